"""Device selection and the settings a JAX build runs under: fp32 pins, jit (JAX has no eager training here)."""
from __future__ import annotations

import os

import jax

from bench.harness.adapter import NO_DEVICE_MEMORY, DeviceUnavailable, NotApplicable
from bench.machine import cpu_model
from bench.spec.modes import JAX_EAGER, check_precision, resolve_mode


def select_device(device: str) -> jax.Device:
    """The JAX device of a build, with fp32 pinned (no TF32)."""
    platform = {"cpu": "cpu", "gpu": "gpu"}.get(device)
    if platform is None:
        raise DeviceUnavailable(f"unknown device {device!r}")
    try:
        chosen = jax.devices(platform)[0]
    except RuntimeError as exc:
        raise DeviceUnavailable(f"JAX sees no {device.upper()} ({exc})") from None
    # JAX (like TF) uses TF32 for fp32 matmuls/convs on Ampere+ unless told otherwise.
    jax.config.update("jax_default_matmul_precision", "highest")
    return chosen


def configure(device: str, mode: str, precision: str) -> dict[str, str]:
    """The settings record of a build; eager is refused, never faked (the cell is skipped)."""
    if resolve_mode("jax", device, mode) == "eager":
        raise NotApplicable(JAX_EAGER)
    check_precision(precision)
    return {
        "mode": "jax.jit of the whole train step (state donated)",
        "precision": ("flax.nnx layers dtype=bfloat16, param_dtype=float32; output layer and loss float32"
                      if precision == "bf16" else "float32, jax_default_matmul_precision=highest (no TF32)"),
        "autotune": f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}" if device == "gpu" else "none on CPU",
    }


def device_name(device: jax.Device) -> str:
    return cpu_model() if device.platform == "cpu" else str(device.device_kind)


def device_memory(device: jax.Device) -> dict[str, int | None]:
    """The allocator's counters: peak since the process started (JAX cannot reset it), bytes in use now."""
    if device.platform == "cpu":
        return dict(NO_DEVICE_MEMORY)
    stats = device.memory_stats() or {}
    return {"peak_bytes": stats.get("peak_bytes_in_use"), "in_use_bytes": stats.get("bytes_in_use"),
            "reserved_bytes": None}

"""Device selection and the settings a PyTorch build runs under (threads, fp32 pins, autotuning, compile), and
the device calls of the adapter contract: host-to-device copies, completion events, memory counters."""
from __future__ import annotations

import numpy as np
import torch

from bench.harness.adapter import NO_DEVICE_MEMORY, DeviceUnavailable, cpu_threads
from bench.machine import cpu_model
from bench.spec.modes import check_precision, resolve_mode


def pin_fp32() -> None:
    """fp32 means fp32: cuDNN convs default to TF32 on Ampere+ (TF and JAX are pinned too).

    torch >= 2.9 has the fp32_precision API; older releases only the allow_tf32 flags. The two must
    not be mixed, and assigning the new attribute on an old torch would silently do nothing.
    """
    if hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "ieee"
        torch.backends.cudnn.conv.fp32_precision = "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False


def select_device(device: str) -> torch.device:
    """The torch device of a build, with the shared CPU thread count and fp32 pinned on GPU."""
    if device == "gpu":
        if not torch.cuda.is_available():
            raise DeviceUnavailable("torch sees no CUDA GPU (torch.cuda.is_available() is False)")
        pin_fp32()
        chosen = torch.device("cuda")
    elif device == "cpu":
        chosen = torch.device("cpu")
    else:
        raise DeviceUnavailable(f"unknown device {device!r}")
    if cpu_threads():
        torch.set_num_threads(cpu_threads())
    return chosen


# What --mode compiled compiles: the whole train step, in two graphs split where autograd runs the backward.
COMPILED = ("torch.compile (inductor, dynamic=False) of the whole train step: forward and loss in one graph "
            "with its backward (AOTAutograd), optimizer.step in another; zero_grad and evaluation eager")


def configure(device: torch.device, mode: str, precision: str) -> tuple[bool, dict[str, str]]:
    """Whether to torch.compile, and the settings record of a build (bench/spec/modes.py).

    GPU autotuning is on for all three frameworks (TF and XLA tune by default): here cudnn.benchmark.
    """
    compiled = resolve_mode("torch", "cpu" if device.type == "cpu" else "gpu", mode) == "compiled"
    check_precision(precision)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    return compiled, {
        "mode": COMPILED if compiled else "eager",
        "precision": (f"torch.autocast({device.type}, bfloat16) around forward and loss, output layer and loss "
                      "in float32, float32 weights and optimizer" if precision == "bf16"
                      else "float32" + (", TF32 off" if device.type == "cuda" else "")),
        "autotune": "cudnn.benchmark=True" if device.type == "cuda" else "none on CPU",
    }


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model()


def copy_in(a: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on `device` without blocking it: on CUDA staged in pinned memory and copied non_blocking
    (a pageable copy would wait for the queued steps); on CPU the array itself, shared, not copied."""
    t = torch.from_numpy(a)
    return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t


def memory(device: torch.device) -> dict[str, int | None]:
    """The caching allocator's counters on CUDA (peak since the last reset, now, reserved); None on CPU."""
    if device.type != "cuda":
        return dict(NO_DEVICE_MEMORY)
    return {"peak_bytes": int(torch.cuda.max_memory_allocated(device)),
            "in_use_bytes": int(torch.cuda.memory_allocated(device)),
            "reserved_bytes": int(torch.cuda.max_memory_reserved(device))}

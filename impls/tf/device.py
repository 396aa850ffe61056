"""Device selection and the settings a TensorFlow/Keras build runs under: threads, fp32 pins, XLA, autotuning."""
from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import keras
import tensorflow as tf

from bench.harness.adapter import NO_DEVICE_MEMORY, DeviceUnavailable, cpu_threads
from bench.machine import cpu_model
from bench.spec.modes import check_precision, resolve_mode

PLACEMENT = "soft device placement off: an op without a GPU kernel is an error, not a silent CPU op"


def select_device(device: str, devices: int = 1) -> str:
    """Threads, GPU visibility and fp32 pinning for a build (with `devices` > 1: that many devices of the
    kind, made or checked); returns the TF device string (the inputs' device, the first one)."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}; impls/tf needs 'tensorflow'")
    threads = cpu_threads()
    if threads:  # must happen before TF's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise DeviceUnavailable("TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)")
        if len(gpus) < devices:
            raise DeviceUnavailable(f"TensorFlow sees {len(gpus)} GPUs, the cell asks for {devices}")
        strict_placement()
        tf_device = "/GPU:0"
    elif device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        if devices > 1:
            split_cpu(devices)
        tf_device = "/CPU:0"
    else:
        raise DeviceUnavailable(f"unknown device {device!r}")
    # TF enables TF32 on Ampere+ by default; the comparison is fp32.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return tf_device


def strict_placement() -> None:
    """No silent CPU fallback on a GPU cell (soft placement is TF's eager default): a CPU op inside a GPU
    step would be timed as GPU work. Process-wide, so set only for a GPU build, before its first op."""
    tf.config.set_soft_device_placement(False)


def split_cpu(n: int) -> None:
    """The physical CPU as n logical devices (sharing its threads), for a MirroredStrategy over them.
    Only possible before TF's runtime starts: a process that already ran TF keeps the devices it had."""
    try:
        tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                                   [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:  # already initialized: fine only if an earlier split made enough devices
        have = len(tf.config.list_logical_devices("CPU"))
        if have < n:
            raise RuntimeError(f"TensorFlow already started with {have} logical CPU device(s); a {n}-device "
                               "build must be the first TF work of its process") from None


def configure(device: str, mode: str, precision: str) -> tuple[bool, dict[str, str]]:
    """(jit_compile, the settings record) of a build (bench/spec/modes.py)."""
    jit = resolve_mode("tf", device, mode) == "compiled"
    check_precision(precision)
    gpu = device == "gpu"
    settings = {
        "mode": "tf.function, jit_compile=True (XLA)" if jit else "tf.function, jit_compile=False (graph, no XLA)",
        "precision": ("keras mixed_bfloat16 policy, output Dense float32, float32 variables and loss"
                      if precision == "bf16" else "float32" + (", TF32 off" if gpu else "")),
        # Read back from the environment the runner set (bench/spec/modes.py): what this process really got.
        "autotune": (f"TF_CUDNN_USE_AUTOTUNE={os.environ.get('TF_CUDNN_USE_AUTOTUNE', 'unset (on)')}, "
                     f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}") if gpu else "none on CPU",
    }
    if gpu:
        settings["placement"] = PLACEMENT
    return jit, settings


def device_name(on_gpu: bool) -> str:
    if not on_gpu:
        return cpu_model()
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    return str(details.get("device_name", "GPU"))


def reset_device_peak(on_gpu: bool, devices: int = 1) -> None:
    """A new peak on each of the cell's GPUs (the peak becomes the memory in use now)."""
    if on_gpu:
        for i in range(devices):
            tf.config.experimental.reset_memory_stats(f"GPU:{i}")


def device_memory(on_gpu: bool, devices: int = 1) -> dict[str, int | None]:
    """Peak and in-use bytes of TF's GPU allocator, the largest over the cell's GPUs (data-parallel replicas
    peak alike; GPU:0 also reduces); TF's API reports no reserved pool, so that is None; all None on CPU."""
    if not on_gpu:
        return dict(NO_DEVICE_MEMORY)
    info = [tf.config.experimental.get_memory_info(f"GPU:{i}") for i in range(devices)]
    return {"peak_bytes": max(int(m["peak"]) for m in info),
            "in_use_bytes": max(int(m["current"]) for m in info), "reserved_bytes": None}

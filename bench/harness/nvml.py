"""A framework-neutral cross-check of device memory: this process's GPU memory as the driver sees it
(NVML, through nvidia-ml-py), summed over the GPUs the cell may see. None where NVML cannot tell."""
from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import Any

Sampler = Callable[[], "int | None"]


def _visible(nvml: Any) -> list[Any]:
    """Handles of the GPUs named in CUDA_VISIBLE_DEVICES (physical indices, as NVML counts), else all."""
    named = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    indices = [int(v) for v in named if v.isdigit()] or list(range(nvml.nvmlDeviceGetCount()))
    return [nvml.nvmlDeviceGetHandleByIndex(i) for i in indices]


def sampler(device: str, module: str = "pynvml") -> Sampler | None:
    """A function returning this process's GPU bytes now, or None on CPU, without nvidia-ml-py or a driver."""
    if device != "gpu":
        return None
    try:
        nvml = importlib.import_module(module)
        nvml.nvmlInit()
        handles = _visible(nvml)
    except Exception:  # noqa: BLE001 - no package, no driver, no GPU: the column stays empty
        return None
    pid = os.getpid()

    def sample() -> int | None:
        try:
            mine = [p.usedGpuMemory for h in handles for p in nvml.nvmlDeviceGetComputeRunningProcesses(h)
                    if p.pid == pid]
        except Exception:  # noqa: BLE001 - a driver error mid-run loses a sample, not the cell
            return None
        # None: the driver does not report per-process memory (e.g. a container's own pid namespace).
        known = [b for b in mine if b is not None]
        return sum(known) if known else None

    return sample

"""Device memory of a training cell, read at the protocol's points: peaks reset after setup, the
training peak read after each epoch's steps (before its evaluation), the evaluation peak apart, the
allocator's reserved bytes (torch) and NVML's per-process figure as a framework-neutral cross-check."""
from __future__ import annotations

from typing import Any

from bench.harness.nvml import Sampler

# A framework whose peak counter cannot be reset: its peaks run from the process start.
NO_RESET = {"jax": "JAX has no peak reset: both peaks count from the process start (setup included); "
                   "device_bytes_before_training is what setup left in use"}


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


class DeviceMemory:
    def __init__(self, adapter: Any, framework: str, nvml: Sampler | None):
        self.adapter, self.framework, self.nvml = adapter, framework, nvml
        self.before: int | None = None
        self.train: int | None = None
        self.eval: int | None = None
        self.reserved: int | None = None
        self.nvml_peak: int | None = None

    def _read(self) -> dict[str, int | None]:
        now = self.adapter.device_memory()
        self.reserved = _max(self.reserved, now.get("reserved_bytes"))
        if self.nvml is not None:
            self.nvml_peak = _max(self.nvml_peak, self.nvml())
        self.adapter.reset_device_peak()  # the next reading covers only what follows
        return now

    def start(self) -> None:
        """After setup, before the first step: what setup left in use; a fresh peak."""
        self.before = self._read()["in_use_bytes"]

    def after_training(self) -> None:
        """After an epoch's steps and its sync, before its evaluation."""
        self.train = _max(self.train, self._read()["peak_bytes"])

    def after_eval(self) -> None:
        self.eval = _max(self.eval, self._read()["peak_bytes"])

    def summary(self) -> dict[str, Any]:
        return {"peak_device_bytes": self.train, "train_peak_device_bytes": self.train,
                "eval_peak_device_bytes": self.eval, "device_reserved_bytes": self.reserved,
                "device_bytes_before_training": self.before, "nvml_peak_bytes": self.nvml_peak,
                "device_memory_note": NO_RESET.get(self.framework) if self.train is not None else None}

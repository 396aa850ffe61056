"""Device memory read at the protocol's points (bench/harness/devmem.py), NVML's per-process cross-check
(bench/harness/nvml.py) through its module seam, and the runtime TF32 check (bench/harness/tf32.py)."""
from __future__ import annotations

import sys
import types

import numpy as np

from bench import data
from bench.harness import nvml, tf32
from bench.harness.train import run_train
from bench.spec import PROFILES, TASKS
from tests.unit.test_timing import ClockedAdapter, run_fake

SETUP, TRAIN, EVAL_PEAK = 100, (500, 700, 600), 900  # bytes in use after setup; each epoch's step peak; eval's


class MemoryAdapter(ClockedAdapter):
    """The fake clocked adapter with a device allocator: steps of epoch e peak at TRAIN[e], every
    evaluation at EVAL_PEAK (above any training peak, as the CNN's batch-1000 evaluation is)."""

    def build(self, task, w, device, seed, **options):
        super().build(task, w, device, seed, **options)
        self.in_use = self.peak = SETUP
        self.resets = 0

    def _touch(self, peak: int) -> None:
        self.peak = max(self.peak, peak)

    def train_step(self, x=None, y=None):
        out = super().train_step(x, y)
        self._touch(TRAIN[self._epoch() % self.per_phase])
        return out

    def predict(self, x):
        self._touch(EVAL_PEAK)
        return super().predict(x)

    def reset_device_peak(self):
        self.resets += 1
        self.peak = self.in_use

    def device_memory(self):
        return {"peak_bytes": self.peak, "in_use_bytes": self.in_use, "reserved_bytes": 2 * self.peak}


def test_the_training_peak_is_read_before_evaluation_and_the_evaluation_peak_apart(tmp_path, monkeypatch):
    task = TASKS["mnist_cnn"]
    td = data.load(task, "mnist", PROFILES["smoke"], tmp_path)
    labels = {task.eval_batch_size: td.test.y, len(td.val): td.val.y}
    cell, holder, _ = run_fake(monkeypatch, tmp_path, "mnist_cnn", 3, tmp_path, labels, 10, MemoryAdapter)
    holder["steps"] = len(td.train) // task.batch_size
    out: dict = {}
    run_train(cell, out, lambda ev, **kw: None)
    # Read after the final evaluation (as before), the peak would be the evaluation's 900.
    assert out["peak_device_bytes"] == out["train_peak_device_bytes"] == max(TRAIN)
    assert out["eval_peak_device_bytes"] == EVAL_PEAK
    assert out["device_bytes_before_training"] == SETUP
    assert out["device_reserved_bytes"] == 2 * EVAL_PEAK  # the allocator's most, whatever ran
    assert out["nvml_peak_bytes"] is None and out["device_memory_note"] is None  # CPU cell: no NVML; torch resets
    assert holder["a"].resets == 1 + 2 * 3  # after setup, then after each epoch's steps and its evaluations


class FakeNvml(types.ModuleType):
    """nvidia-ml-py's calls as bench uses them: GPUs 0 and 1, this process on both, another process on 1."""

    def __init__(self, used: dict[int, list[tuple[int, int | None]]]):
        super().__init__("fake_nvml")
        self.used = used

    def nvmlInit(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.used)

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=b) for pid, b in self.used[handle]]


def test_nvml_counts_this_process_on_the_visible_gpus_only(monkeypatch):
    me = __import__("os").getpid()
    monkeypatch.setitem(sys.modules, "fake_nvml", FakeNvml({0: [(me, 300)], 1: [(me, 50), (me + 1, 7000)]}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    sample = nvml.sampler("gpu", module="fake_nvml")
    assert sample is not None and sample() == 50
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert nvml.sampler("gpu", module="fake_nvml")() == 350
    monkeypatch.setitem(sys.modules, "fake_nvml", FakeNvml({0: [(me, None)]}))  # no per-process figure
    assert nvml.sampler("gpu", module="fake_nvml")() is None


def test_nvml_is_absent_on_cpu_cells_and_without_a_driver():
    assert nvml.sampler("cpu") is None
    assert nvml.sampler("gpu", module="no_such_nvml_module") is None


def truncated(a: np.ndarray, bits: int = 10) -> np.ndarray:
    """float32 values cut to `bits` mantissa bits: what a TF32 tensor core multiplies."""
    return (a.view(np.uint32) & np.uint32((0xFFFFFFFF << (23 - bits)) & 0xFFFFFFFF)).view(np.float32)


def test_the_tf32_check_tells_fp32_from_tf32_matmuls():
    assert tf32.check(lambda a, b: a @ b).startswith("fp32 (no TF32)")
    tf32_matmul = lambda a, b: truncated(a) @ truncated(b)  # noqa: E731
    assert tf32.check(tf32_matmul).startswith("reduced precision") and tf32.relative_error(tf32_matmul) > 1e-4

"""After training: prediction latency and throughput, and saving and reloading the trained model in each
framework's native formats and the neutral .npz, with a check that the reloaded model predicts the same."""
from __future__ import annotations

import functools
import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import TaskData, eval_batches
from bench.harness.adapter import load_adapter
from bench.harness.cell import Cell
from bench.harness.timing import now
from bench.spec import TaskSpec
from bench.spec.protocol import INFERENCE

Predict = Callable[[np.ndarray], np.ndarray]
NEUTRAL = "npz"  # the project's own format: every framework reads it (bench/weights)


def measure(adapter: Any, task: TaskSpec, td: TaskData, cell: Cell, out: dict[str, Any]) -> None:
    """Fill the record's inference and persistence fields; a format that fails says why in `saved`."""
    batch = next(x for x, _ in eval_batches(task, td.test))  # the evaluation batch (padded to its fixed size)
    out.update(latency(adapter.inference(), batch))
    out["saved"] = saved = persist(adapter, task, cell, batch)
    native = saved[(*adapter.formats(), NEUTRAL)[0]]  # the framework's usual format
    out.update(saved_bytes=native.get("bytes"), save_time_s=native.get("save_s"), load_time_s=native.get("load_s"),
               reload_equal=native.get("equal"))


def latency(predict: Predict, batch: np.ndarray) -> dict[str, Any]:
    """Batch-1 latency (median, p99) and throughput at the evaluation batch (median call)."""
    times = _timed(predict, batch[:1], INFERENCE.latency_warmup, INFERENCE.latency_calls)
    batch_times = _timed(predict, batch, INFERENCE.throughput_warmup, INFERENCE.throughput_calls)
    return {"latency_b1_s": statistics.median(times), "latency_b1_p99_s": float(np.quantile(times, 0.99)),
            "latency_calls": len(times), "predict_batch": len(batch),
            "predict_samples_per_s": len(batch) / statistics.median(batch_times)}


def _timed(predict: Predict, x: np.ndarray, warmup: int, calls: int) -> list[float]:
    """Seconds of each of `calls` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        predict(x)
    times = []
    for _ in range(calls):
        t = now()
        predict(x)
        times.append(now() - t)
    return times


def persist(adapter: Any, task: TaskSpec, cell: Cell, batch: np.ndarray) -> dict[str, dict[str, Any]]:
    """Per format: file size, save and load seconds, and whether the reloaded model's logits on `batch`
    equal the trained model's bit for bit (else the largest difference). Files go to a temporary folder."""
    expected = adapter.predict(batch)
    savers: dict[str, tuple[Callable[[Path], None], Callable[[Path], Predict]]] = {
        fmt: (functools.partial(adapter.save, fmt), functools.partial(adapter.load, fmt)) for fmt in adapter.formats()}
    savers[NEUTRAL] = (lambda p: np.savez(p / "model.npz", **adapter.get_weights()),
                       lambda p: _load_npz(p / "model.npz", task, cell))
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench-save-") as tmp:
        for fmt, (save, load) in savers.items():
            folder = Path(tmp) / fmt
            folder.mkdir()
            out[fmt] = _round_trip(save, load, folder, batch, expected)
    return out


def _round_trip(save: Callable[[Path], None], load: Callable[[Path], Predict], folder: Path, batch: np.ndarray,
                expected: np.ndarray) -> dict[str, Any]:
    """Save into an empty `folder`, load back, predict `batch`; the size is all the folder holds."""
    try:
        t = now()
        save(folder)
        save_s = now() - t
        t = now()
        predict = load(folder)  # file -> a model ready to predict (its first call may still compile)
        load_s = now() - t
        got = predict(batch)
    except Exception as exc:  # noqa: BLE001 - one format failing must not lose the others or the record
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300]}
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    equal = bool(np.array_equal(got, expected))
    return {"bytes": size, "save_s": save_s, "load_s": load_s, "equal": equal,
            "max_abs_diff": 0.0 if equal else float(np.max(np.abs(got.astype(np.float64) - expected)))}


def _load_npz(path: Path, task: TaskSpec, cell: Cell) -> Predict:
    """The neutral file into a new model of the same framework, built as the worker builds one."""
    with np.load(path, allow_pickle=False) as f:
        weights = {k: f[k] for k in f.files}
    fresh = load_adapter(cell.framework)
    fresh.build(task, weights, cell.device, cell.seed, mode=cell.mode, precision=cell.precision)
    return fresh.inference()

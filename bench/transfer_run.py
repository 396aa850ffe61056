"""Worker side of a transfer-learning cell: shared photo batches, two timed phases, binary evaluation."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from bench import data, efficiency, images, loop, measure, timing
from bench.imagefolder import Photos
from bench.vision import TransferTaskSpec


def train_batches(photos: Photos, task: TransferTaskSpec, seed: int, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Full batches in the seeded order of `epoch`, mirrored by the shared flip mask, normalised in NumPy."""
    order = data.epoch_order(seed, epoch, len(photos))
    flips = images.flip_mask(seed, epoch, len(photos)) if task.flip else np.zeros(len(photos), bool)
    bs = task.batch_size
    for i in range(len(photos) // bs):
        idx = order[i * bs : (i + 1) * bs]
        x = photos.x[idx]  # fancy indexing copies: flipping in place leaves the cache untouched
        m = flips[idx]
        x[m] = x[m, :, ::-1]
        yield images.normalize(x, task), photos.y[idx]


def eval_batches(photos: Photos, task: TransferTaskSpec) -> Iterator[tuple[np.ndarray, int]]:
    """Fixed-size batches in file order; the last is zero-padded (one shape: no recompiles)."""
    bs = task.eval_batch_size
    for i in range(0, len(photos), bs):
        x = photos.x[i : i + bs]
        n = len(x)
        if n < bs:
            x = np.concatenate([x, np.zeros((bs - n, *x.shape[1:]), x.dtype)])
        yield images.normalize(x, task), n


def binary_metrics(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Mean sigmoid cross-entropy (stable form) and accuracy at logit 0, in float64."""
    z = logits.reshape(-1).astype(np.float64)
    loss = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return float(loss.mean()), float(((z > 0).astype(np.int32) == y).mean())


def evaluate(adapter: Any, photos: Photos, task: TransferTaskSpec) -> tuple[float, float]:
    logits = np.concatenate([adapter.predict(x)[:n] for x, n in eval_batches(photos, task)])
    return binary_metrics(logits, photos.y)


def fingerprint(*splits: Photos) -> str:
    h = hashlib.sha256()
    for s in splits:
        h.update(s.x.tobytes())
        h.update(s.y.tobytes())
    return h.hexdigest()[:16]


def run_transfer(cell: Any, out: dict[str, Any], notify: Callable[..., None]) -> None:
    """Both phases of a transfer cell, filling `out` as it goes (what was measured survives a failure)."""
    from bench import imagefolder, weights
    from bench.adapter import load_adapter
    from bench.spec import TASKS, profile_for

    task: TransferTaskSpec = TASKS[cell.task]  # type: ignore[assignment]
    t0 = measure.clock()
    adapter = load_adapter(cell.framework, "transfer")
    out["import_time_s"] = measure.clock() - t0
    out.setdefault("versions", {}).update(adapter.versions())
    train, test, source = imagefolder.load_photos(task, cell.dataset, profile_for(task, cell.profile), Path(cell.data_root))
    if len(train) < task.batch_size:
        raise ValueError(f"{len(train)} training photos is less than one batch of {task.batch_size}")
    w = weights.load(Path(cell.weights_path), task)
    adapter.build(task, w, cell.device, cell.seed, mode=cell.mode, precision=cell.precision)
    prefetch = task.measurement.prefetch(cell.device)  # batches drawn ahead: on GPU only (bench/spec.py)
    out["settings"] = {**adapter.settings(), "input": loop.input_setting(prefetch)}
    out.update(
        param_count=adapter.param_count(), n_train=len(train), n_val=0, n_test=len(test), eval_split="val",
        data_source=source, data_fingerprint=fingerprint(train, test), data_skipped=train.skipped + test.skipped,
        weights_digest=weights.digest(w), setup_time_s=measure.clock() - t0,
        setup_rss_bytes=measure.current_rss_bytes(), device_name=adapter.device_name(),
    )
    steps = len(train) // task.batch_size
    history: list[dict[str, Any]] = out.setdefault("history", [])
    phases: list[dict[str, Any]] = out.setdefault("phases", [])
    all_times: list[float] = []
    rss = measure.start_training_rss(out, notify)
    tta = timing.TimeToAccuracy(task.target_accuracy.get(cell.dataset))
    notify("start", epochs=cell.epochs * len(task.phases), steps=steps)
    tta.start()  # after model build and the RSS reset, before the first batch; runs on through both phases
    for p, phase in enumerate(task.phases):
        adapter.set_phase(p)
        windows = timing.StepWindows(task.measurement, adapter.sync)  # per phase: phase 2 compiles anew
        times: list[float] = []
        for e in range(cell.epochs):
            # Each phase continues the shared order stream: phase 2 does not replay phase 1's epochs.
            batches = train_batches(train, task, cell.seed, p * cell.epochs + e)
            elapsed, losses = loop.train_epoch(adapter, batches, windows, prefetch)
            times.append(elapsed)  # validation below: outside the time, inside the TTA clock
            t = measure.clock()
            val_loss, val_acc = evaluate(adapter, test, task)
            row = {"phase": phase.name, "epoch": len(all_times) + len(times), "time_s": times[-1],
                   "train_loss": sum(float(v) for v in losses) / len(losses),
                   "val_loss": val_loss, "val_accuracy": val_acc, "val_time_s": measure.clock() - t}
            tta.check(row["epoch"], val_acc)
            history.append(row)
            out.update(epoch_times_s=all_times + times, **tta.summary())
            notify("epoch", **row, epochs=cell.epochs * len(task.phases))
        all_times += times
        phases.append({"name": phase.name, "epochs": cell.epochs, "trainable_params": adapter.trainable_count(),
                       "time_s": sum(times), **measure.epoch_summary(times, steps * task.batch_size),
                       **windows.summary(), "val_loss": val_loss, "val_accuracy": val_acc,
                       "eval_time_s": row["val_time_s"]})
    out.update(measure.train_rss(rss))
    out["train_time_s"] = sum(all_times)
    # The main table's epoch and step columns are the first (feature-extraction) phase's; `phases` has each.
    out.update({k: phases[0][k] for k in ("first_epoch_s", "steady_epoch_s", "samples_per_s", "first_step_s",
                                          "steady_step_s", "steady_step_iqr_s", "steady_step_cv", "step_windows")})
    out["test_loss"], out["test_accuracy"] = phases[-1]["val_loss"], phases[-1]["val_accuracy"]
    out["eval_time_s"] = phases[-1]["eval_time_s"]
    out["peak_device_bytes"] = adapter.device_peak_bytes()
    efficiency.annotate(out, cell)  # last: the peak microbenchmark must not perturb training or memory peaks

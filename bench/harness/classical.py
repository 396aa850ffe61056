"""A classical baseline's cell (framework `sklearn`): the frameworks' data and subset, features, then a
scikit-learn fit and predict, timed by the same clock, with the same memory counters and record."""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import data, weights
from bench.data import Split, TaskData, subsets
from bench.files import cache_root
from bench.harness import memory
from bench.harness.adapter import NotApplicable, load_adapter
from bench.harness.cell import Cell
from bench.harness.timing import now
from bench.spec import TASKS, TaskSpec, spec_hash
from bench.spec.sweep import Baseline, Frozen, Hog, baseline


def run_baseline(cell: Cell, out: dict[str, Any], notify: Callable[..., None]) -> None:
    task, base = TASKS[cell.task], baseline(cell.task, cell.mode)
    t0 = now()
    from impls.sklearn import baselines as impl  # scikit-learn's import, timed as a framework's is

    out["import_time_s"] = now() - t0
    out.setdefault("versions", {}).update(impl.versions())
    full = data.load(task, cell.dataset, task.profiles[cell.profile], Path(cell.data_root))
    td = subsets.apply(full, cell.train_size, cell.seed)
    reason = base.too_large(len(td.train))
    if reason:
        raise NotApplicable(reason)
    out.update(n_train=len(td.train), n_val=len(td.val) if td.val else 0, n_test=len(td.test),
               eval_split=td.eval_split, data_source=td.source, data_fingerprint=td.fingerprint,
               data_skipped=td.skipped, epochs=0, setup_time_s=now() - t0)
    settings = {"features": describe_features(base)}
    if isinstance(base.features, Frozen):  # computed once, before the clock: the network's work, not the baseline's
        full, where = frozen_features(cell, task, base.features, full)
        td = subsets.apply(full, cell.train_size, cell.seed)
        settings["features"] += f" (cached in {where}; not in the train time)"
    model = impl.estimator(base, cell.seed, cell.threads)
    rss = memory.start_training_rss(out, notify)
    notify("start", epochs=1, steps=0)
    t = now()
    model.fit(inputs(impl, base, td.train), td.train.y)
    out["train_time_s"] = now() - t
    out.update(memory.train_rss(rss))
    t = now()
    x_test = inputs(impl, base, td.test)
    accuracy = float(np.mean(model.predict(x_test) == td.test.y))
    out["eval_time_s"] = now() - t  # features and predict of the evaluation split
    out.update(test_accuracy=accuracy, test_loss=impl.log_loss(model, x_test, td.test.y),
               param_count=impl.param_count(model),
               settings={**settings, "model": impl.describe(model), "why": base.why or "defaults"})
    notify("epoch", epoch=1, epochs=1, **{f"{td.eval_split}_accuracy": accuracy})


def describe_features(base: Baseline) -> str:
    f = base.features
    if isinstance(f, Hog):
        return (f"HOG of the grey photo: {f.orientations} orientations, {f.pixels_per_cell} px cells, "
                f"{f.cells_per_block}x{f.cells_per_block} blocks, {f.block_norm}")
    if isinstance(f, Frozen):
        return f"frozen pretrained backbone: output of {f.after!r}, computed by {f.framework}"
    return "pixels, scaled as the networks receive them, flattened"


def inputs(impl: Any, base: Baseline, split: Split) -> np.ndarray:
    """What the estimator reads: HOG of the photos, or the split's values (pixels, or stored features) as rows."""
    if isinstance(base.features, Hog):
        return impl.hog_features(split.x, base.features)
    return split.x.reshape(len(split), -1)


def frozen_features(cell: Cell, task: TaskSpec, spec: Frozen, td: TaskData) -> tuple[TaskData, str]:
    """Every split's pooled backbone features by one framework, computed once per (task, data, weights) and
    kept in the user cache; the labels stay the splits' own."""
    w = weights.load(Path(cell.weights_path), task)
    # the backbone is the published weights (the seed only draws the new head, which the features never see)
    backbone = task.pretrained.sha256 if task.pretrained else weights.digest(w)
    key = hashlib.sha256(f"{spec_hash(task)} {td.fingerprint} {backbone} {spec}".encode()).hexdigest()[:16]
    path = cache_root() / "features" / f"{task.name}-{spec.framework}-{key}.npz"
    if not path.exists():
        adapter = load_adapter(spec.framework)
        adapter.build(task, w, "cpu", cell.seed)
        feats = {name: _features(adapter, task, s, spec.batch) for name, s in _splits(td).items()}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, allow_pickle=False, **feats)
        tmp.replace(path)
    with np.load(path, allow_pickle=False) as f:
        out = {name: Split(f[name], s.y) for name, s in _splits(td).items()}
    return TaskData(out["train"], out.get("val"), out["test"], td.source, td.eval_split, td.skipped), str(path)


def _splits(td: TaskData) -> dict[str, Split]:
    return {k: s for k, s in (("train", td.train), ("val", td.val), ("test", td.test)) if s is not None}


def _features(adapter: Any, task: TaskSpec, split: Split, batch: int) -> np.ndarray:
    rows = []
    for i in range(0, len(split), batch):
        x = task.input.normalize(split.x[i : i + batch])
        rows.append(adapter.predict_features(x))
    return np.concatenate(rows).astype(np.float32)

"""`bench verify`: same weights, same inputs, every framework -> pairwise max |logit difference|; where a
task has a pretrained auxiliary head, the classes it gives real sample photos."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.runner.config import RunConfig
from bench.runner.execute import run_cell
from bench.runner.plan import plan, write_weights
from bench.spec import TASKS, param_count


@dataclass
class Outcome:
    task: str
    framework: str
    status: str
    error: str | None
    param_count: int | None
    logits: np.ndarray | None


@dataclass
class PairDiff:
    task: str
    a: str
    b: str
    max_abs_diff: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return bool(self.max_abs_diff <= self.tolerance)


def run_verify(cfg: RunConfig) -> tuple[list[Outcome], list[PairDiff]]:
    """Each (task, framework) in its own worker on CPU, fp32; then compare every pair."""
    outcomes: list[Outcome] = []
    cells = plan(cfg, kind="logits")
    write_weights(cells, cfg)
    for cell in cells:
        cell.logits_path = str((cfg.out / "cells" / f"{cell.task}_{cell.framework}_logits.npy").resolve())
        Path(cell.logits_path).parent.mkdir(parents=True, exist_ok=True)
        Path(cell.logits_path).unlink(missing_ok=True)
        rec, _ = run_cell(cell, cfg)
        logits = np.load(cell.logits_path, allow_pickle=False) if rec.status == "ok" else None
        outcomes.append(Outcome(cell.task, cell.framework, rec.status, rec.error, rec.param_count, logits))
    diffs = []
    for task in cfg.tasks:
        ok = [(o, o.logits.astype(np.float64)) for o in outcomes if o.task == task and o.logits is not None]
        for (a, la), (b, lb) in itertools.combinations(ok, 2):
            d = float(np.max(np.abs(la - lb)))
            diffs.append(PairDiff(task, a.framework, b.framework, d, TASKS[task].verify_tolerance))
    return outcomes, diffs


def imagenet_top5(outcomes: list[Outcome]) -> dict[tuple[str, str], list[list[int]]]:
    """(task, framework) -> per sample photo, the auxiliary head's 5 best classes (tasks with one)."""
    out = {}
    for o in outcomes:
        task = TASKS[o.task]
        if o.logits is not None and task.aux_head is not None:
            imagenet = o.logits[:, : task.aux_head.layer.units]  # then the model's own logits
            out[(o.task, o.framework)] = [list(map(int, np.argsort(-row)[:5])) for row in imagenet]
    return out


def _aux_problems(outcomes: list[Outcome]) -> list[str]:
    from bench.data.images import SAMPLE_PHOTOS

    out = []
    top5 = imagenet_top5(outcomes)
    for task in sorted({t for t, _ in top5}):
        runs = {fw: v for (t, fw), v in top5.items() if t == task}
        for i, (photo, (_, right)) in enumerate(SAMPLE_PHOTOS.items()):
            sets = {fw: v[i] for fw, v in runs.items()}
            if len({tuple(sorted(v)) for v in sets.values()}) > 1:
                out.append(f"{task}: the frameworks disagree on the top-5 ImageNet classes of {photo}: {sets}")
            for fw, v in sets.items():
                if not set(v) & set(right):
                    out.append(f"{task}/{fw}: {photo} is not recognised (top-5 {v}, expected one of {right})")
            if photo == "chelsea":
                out += [f"{task}/{fw}: the cat photo's top-1 class {v[0]} is not a cat class"
                        for fw, v in sets.items() if v[0] not in right]
    return out


def problems(outcomes: list[Outcome], diffs: list[PairDiff]) -> list[str]:
    """Everything that makes verification fail; empty means the frameworks agree."""
    out = []
    for o in outcomes:
        if o.status != "ok":
            out.append(f"{o.task}/{o.framework}: {o.status}: {(o.error or '').splitlines()[0] if o.error else ''}")
        elif o.param_count != param_count(TASKS[o.task]):
            out.append(f"{o.task}/{o.framework}: {o.param_count} parameters, the spec has {param_count(TASKS[o.task])}")
    out += [f"{d.task}: {d.a} vs {d.b} differ by {d.max_abs_diff:.2e} > {d.tolerance:.0e}" for d in diffs if not d.ok]
    out += _aux_problems(outcomes)
    for task in {o.task for o in outcomes}:
        if sum(1 for o in outcomes if o.task == task and o.logits is not None) < 2:
            out.append(f"{task}: fewer than two frameworks ran, nothing was compared")
    return out

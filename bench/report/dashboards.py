"""History for dashboards: each cell's latest run as the JSON that github-action-benchmark and Bencher read.

One series per cell and metric: the median over the run's ok repeats, with the 95 % t-interval of the
repeats as its bounds (a single repeat: both bounds are the value). github-action-benchmark's
`customSmallerIsBetter` holds one direction only, so accuracy goes there as the test error (100 - accuracy).
"""
from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.records import Record, group_key
from bench.report.tables import spread
from bench.spec import optimizer_axis
from bench.spec.modes import label

FORMATS = ("github-action-benchmark", "bmf")


@dataclass(frozen=True)
class Series:
    slug: str  # Bencher measure
    name: str  # github-action-benchmark's metric words
    unit: str
    read: Callable[[Record], float | None]


SERIES = (
    Series("steady-step-ms", "steady step", "ms", lambda r: None if r.steady_step_s is None else 1e3 * r.steady_step_s),
    Series("first-step-s", "first step (compile)", "s", lambda r: r.first_step_s),
    Series("train-time-s", "train time", "s", lambda r: r.train_time_s),
    Series("peak-memory-mib", "peak memory", "MiB",
           lambda r: (lambda v: None if v is None else v / 2**20)(
               r.peak_device_bytes if r.device == "gpu" else r.peak_host_rss_bytes)),
    Series("accuracy-pct", "test accuracy", "%", lambda r: None if r.test_accuracy is None else 100 * r.test_accuracy),
)


def bench_name(r: Record) -> str:
    """'mnist_mlp/torch/cpu (smoke)', the mode and precision named off their defaults, a sweep's size too."""
    size = f", n={r.train_size}" if r.train_size else ""
    size += f", {r.optimizer}" if optimizer_axis.off_default(r.task, r.optimizer) else ""
    fw = label(r.framework, r.device, r.mode, r.precision, r.devices)
    return f"{r.task}/{fw}/{r.device} ({r.profile}, {r.dataset}{size})"


def latest_runs(recs: list[Record]) -> dict[str, list[Record]]:
    """Per cell, the ok records of its most recent run (by start time)."""
    runs: dict[tuple, dict[str, list[Record]]] = {}
    for r in recs:
        runs.setdefault(group_key(r), {}).setdefault(r.run_id, []).append(r)
    out = {}
    for by_run in runs.values():
        newest = max(by_run.values(), key=lambda g: max(r.started_at or "" for r in g))
        ok = [r for r in newest if r.status == "ok"]
        if ok:
            out[bench_name(ok[0])] = ok
    return dict(sorted(out.items()))


def point(values: list[float]) -> tuple[float, float, float]:
    """(median, lower, upper): the t-interval of the repeats around their mean, widened to hold the median."""
    mid = statistics.median(values)
    ci = spread(values)
    return (mid, mid, mid) if ci is None else (mid, min(ci[0], mid), max(ci[1], mid))


def export(recs: list[Record], fmt: str) -> str:
    """The JSON text of `fmt` for each cell's latest run."""
    bmf: dict[str, dict[str, dict[str, float]]] = {}
    gab: list[dict[str, object]] = []
    for name, ok in latest_runs(recs).items():
        for s in SERIES:
            values = [v for v in map(s.read, ok) if v is not None]
            if not values:
                continue
            mid, lo, hi = point(values)
            if s.unit == "%":  # a t-interval of 2 repeats can reach past 0 or 100
                lo, hi = max(lo, 0.0), min(hi, 100.0)
            bmf.setdefault(name, {})[s.slug] = {"value": mid, "lower_value": lo, "upper_value": hi}
            if s.slug == "accuracy-pct":  # smaller is better there: the error, its bounds swapped
                mid, lo, hi, what = 100 - mid, 100 - hi, 100 - lo, "test error"
            else:
                what = s.name
            commit = str((ok[0].env or {}).get("commit") or "unknown")
            gab.append({"name": f"{name} {what}", "unit": s.unit, "value": round(mid, 6),
                        "range": f"± {max(hi - mid, mid - lo):.6g}",
                        "extra": f"run {ok[0].run_id}, commit {commit}, {len(values)} repeats"})
    return json.dumps(bmf if fmt == "bmf" else gab, indent=1, sort_keys=fmt == "bmf", ensure_ascii=False) + "\n"

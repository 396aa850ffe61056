"""`bench compare`: baseline vs current records per cell, with thresholds and a significance test."""
from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.errors import UsageError
from bench.records.schema import GROUP_KEY, Record, group_key
from bench.spec import optimizer_axis

# What a metric is, how to read it from a record, and which direction is bad.
METRICS: dict[str, tuple[str, Callable[[Record], float | None], str]] = {
    "time": ("train s", lambda r: r.train_time_s, "up"),
    "memory": ("peak RSS MiB", lambda r: None if r.peak_host_rss_bytes is None else r.peak_host_rss_bytes / 2**20,
               "up"),
    "accuracy": ("accuracy %", lambda r: None if r.test_accuracy is None else 100 * r.test_accuracy, "down"),
    "latency": ("batch-1 latency ms", lambda r: None if r.latency_b1_s is None else 1e3 * r.latency_b1_s, "up"),
    "throughput": ("predictions/s", lambda r: r.predict_samples_per_s, "down"),
    "size": ("saved MiB", lambda r: None if r.saved_bytes is None else r.saved_bytes / 2**20, "up"),
}
# %, except accuracy in percentage points. A sub-millisecond call is noisier than a training run: wider.
DEFAULT_THRESHOLDS = {"time": 10.0, "memory": 10.0, "accuracy": 0.5, "latency": 25.0, "throughput": 25.0,
                      "size": 5.0}
ALPHA = 0.05  # one-sided Mann-Whitney U, used when both sides have repeats
REGRESSIONS = ("worse", "newly failing")


def parse_thresholds(text: str | None) -> dict[str, float]:
    """'time=10%,memory=10%,accuracy=0.5pp' (any subset) -> {metric: value}."""
    out = dict(DEFAULT_THRESHOLDS)
    for item in filter(None, (text or "").split(",")):
        m = re.fullmatch(r"\s*(\w+)\s*=\s*([0-9.]+)\s*(%|pp)\s*", item)
        if not m or m.group(1) not in METRICS:
            ratios = ", ".join(m for m in METRICS if m != "accuracy")
            raise UsageError(f"--threshold: {item!r} is not METRIC=N% ({ratios}) or accuracy=Npp")
        name, value, unit = m.group(1), float(m.group(2)), m.group(3)
        if (unit == "pp") != (name == "accuracy"):
            raise UsageError(f"--threshold: {name} takes {'pp' if name == 'accuracy' else '%'}, not {unit}")
        out[name] = value
    return out


@dataclass
class Row:
    cell: tuple
    metric: str
    baseline: float | None
    current: float | None
    change: str
    mark: str
    detail: str = ""


def _groups(recs: list[Record]) -> dict[tuple, list[Record]]:
    out: dict[tuple, list[Record]] = {}
    for r in recs:
        out.setdefault(group_key(r), []).append(r)
    return out


def _p_worse(base: list[float], cur: list[float], bad: str) -> float:
    from scipy.stats import mannwhitneyu  # only with repeats on both sides

    alternative = "greater" if bad == "up" else "less"
    return float(mannwhitneyu(cur, base, alternative=alternative, method="exact").pvalue)


def compare_metric(base: list[float], cur: list[float], metric: str, threshold: float) -> tuple[str, str, str]:
    """(change text, mark, detail) for one metric of one cell."""
    _, _, bad = METRICS[metric]
    b, c = statistics.median(base), statistics.median(cur)
    if metric == "accuracy":
        delta, change = c - b, f"{c - b:+.2f} pp"
    else:
        delta = 100 * (c / b - 1) if b else 0.0
        change = f"{delta:+.1f} %"
    worse_dir = delta > 0 if bad == "up" else delta < 0
    if abs(delta) <= threshold:
        return change, "unchanged", ""
    if len(base) >= 2 and len(cur) >= 2 and math.comb(len(base) + len(cur), len(base)) * ALPHA >= 1:
        p = _p_worse(base, cur, bad) if worse_dir else _p_worse(cur, base, bad)
        if p > ALPHA:
            return change, "not significant", f"Mann-Whitney p={p:.3f} (n={len(base)}/{len(cur)})"
        return change, "worse" if worse_dir else "better", f"Mann-Whitney p={p:.3f}"
    # One run a side, or too few for the test ever to reach ALPHA (its smallest p is 1/C(n+m, n): 1/6 at
    # 2 and 2, 1/20 at 3 and 3): the threshold alone decides, and the detail says so.
    why = "single run" if min(len(base), len(cur)) < 2 else \
        f"n={len(base)}/{len(cur)}: Mann-Whitney cannot reach p<={ALPHA}"
    return change, "worse" if worse_dir else "better", f"{why}: threshold only"


def compare(baseline: list[Record], current: list[Record], thresholds: dict[str, float]) -> list[Row]:
    rows: list[Row] = []
    base_g, cur_g = _groups(baseline), _groups(current)
    for cell in sorted(set(base_g) | set(cur_g), key=str):
        b_recs, c_recs = base_g.get(cell, []), cur_g.get(cell, [])
        if not b_recs or not c_recs:
            side = "baseline" if b_recs else "current"
            rows.append(Row(cell, "-", None, None, "", "not comparable", f"only in the {side}"))
            continue
        hashes = {r.spec_hash for r in b_recs} | {r.spec_hash for r in c_recs}
        if len(hashes) > 1:
            rows.append(Row(cell, "-", None, None, "", "not comparable", f"different spec versions {sorted(hashes)}"))
            continue
        b_ok, c_ok = [r for r in b_recs if r.status == "ok"], [r for r in c_recs if r.status == "ok"]
        if b_ok and not c_ok:
            err = next((r.error for r in c_recs if r.error), "") or ""
            rows.append(Row(cell, "-", None, None, "", "newly failing", err.splitlines()[0][:120] if err else ""))
            continue
        if c_ok and not b_ok:
            rows.append(Row(cell, "-", None, None, "", "fixed"))
            continue
        if not b_ok:
            rows.append(Row(cell, "-", None, None, "", "not comparable", "no ok run on either side"))
            continue
        for metric, (_, read, _) in METRICS.items():
            # NaN/inf (a diverged run, a damaged record) is no measurement
            bv = [v for v in map(read, b_ok) if v is not None and math.isfinite(v)]
            cv = [v for v in map(read, c_ok) if v is not None and math.isfinite(v)]
            if not bv or not cv:
                continue
            change, mark, detail = compare_metric(bv, cv, metric, thresholds[metric])
            rows.append(Row(cell, metric, statistics.median(bv), statistics.median(cv), change, mark, detail))
    return rows


def check_overlap(baseline: list[Record], current: list[Record], base_name: str, cur_name: str) -> None:
    """A baseline sharing no cell with the current records is the wrong baseline: say what each holds."""
    if set(_groups(baseline)) & set(_groups(current)):
        return

    def holds(recs: list[Record]) -> str:
        cells = sorted({(r.task, r.device, r.profile, r.dataset) for r in recs})
        modes = sorted({f"{r.framework} {r.mode}/{r.precision}" for r in recs})
        return ("; ".join(f"{t} on {d} ({p}, {ds})" for t, d, p, ds in cells[:6]) + (" …" if len(cells) > 6 else "")
                + f" ({', '.join(modes[:6])}{' …' if len(modes) > 6 else ''})")  # no [ ]: rich markup

    raise UsageError(f"nothing to compare: baseline {base_name} holds {holds(baseline)} but current {cur_name} "
                     f"holds {holds(current)}; use a baseline of the same tasks, devices, profile, modes and precision")


def shown(cell: tuple, key: tuple[str, ...] = GROUP_KEY) -> tuple[str, str, str]:
    """(task, framework label, device) of a `key` tuple: 'torch (compiled, bf16)' off the default mode/fp32."""
    from bench.spec.modes import label

    task, fw, dev, mode, precision = (cell[key.index(k)]
                                      for k in ("task", "framework", "device", "mode", "precision"))
    size = cell[key.index("train_size")] if "train_size" in key else None
    other = optimizer_axis.off_default(task, cell[key.index("optimizer")]) if "optimizer" in key else None
    task_label = " ".join(filter(None, (task, f"n={size:,}" if size else "", other)))
    devices = cell[key.index("devices")] if "devices" in key else 1
    return task_label, label(fw, dev, mode, precision, devices), dev


def fmt_value(v: float | None) -> str:
    return "–" if v is None else f"{v:,.2f}"


def markdown(rows: list[Row]) -> str:
    lines = ["| task | framework | device | metric | baseline | current | change | mark | detail |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        task, fw, dev = shown(r.cell)
        mark = f"**{r.mark}**" if r.mark in REGRESSIONS else r.mark
        lines.append(f"| {task} | {fw} | {dev} | {r.metric} | {fmt_value(r.baseline)} | {fmt_value(r.current)} | "
                     f"{r.change} | {mark} | {r.detail} |")
    return "\n".join(lines) + "\n"

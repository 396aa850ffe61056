"""The A/B gate: sides A and B measured in the same interleaved rounds, compared round by round.

Each round gives one pair per cell; the effect is B/A (times, memory) or B - A (accuracy, pp), its
estimate the median over rounds with a distribution-free (sign-test) confidence interval, its test a
one-sided Wilcoxon signed-rank test in the bad direction, Holm-corrected over every cell x metric.
A change counts when it is larger than the metric's threshold *and* significant; when the rounds are
too few for the test ever to reach its level, the threshold alone decides and the table says so.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.errors import UsageError
from bench.records.schema import GROUP_KEY, Record

ALPHA = 0.05
PAIR_KEY = tuple(k for k in GROUP_KEY if k != "side")  # what A and B share: the same cell on both sides


@dataclass(frozen=True)
class Metric:
    label: str
    read: Callable[[Record], float | None]
    bad: str  # "up": larger is worse; "down": smaller is worse
    ratio: bool  # True: B/A in %; False: B - A in percentage points
    threshold: float  # % for ratios, pp otherwise


def _memory(r: Record) -> float | None:
    """The device's own peak on GPU (what limits a model there), the worker's peak RSS on CPU; MiB."""
    v = r.peak_device_bytes if r.device == "gpu" else r.peak_host_rss_bytes
    return None if v is None else v / 2**20


# What a run is about, each apart: total train time would mostly be compile time in a smoke run.
METRICS: dict[str, Metric] = {
    "step": Metric("steady step ms", lambda r: None if r.steady_step_s is None else 1e3 * r.steady_step_s,
                   "up", True, 5.0),
    "first_step": Metric("first step s", lambda r: r.first_step_s, "up", True, 10.0),
    "memory": Metric("peak memory MiB", _memory, "up", True, 5.0),
    "accuracy": Metric("accuracy %", lambda r: None if r.test_accuracy is None else 100 * r.test_accuracy,
                       "down", False, 0.5),
}
REGRESSIONS = ("worse", "newly failing")


def parse_thresholds(text: str | None) -> dict[str, float]:
    """'step=5%,first_step=10%,memory=5%,accuracy=0.5pp' (any subset) -> {metric: value}."""
    out = {name: m.threshold for name, m in METRICS.items()}
    for item in filter(None, (text or "").split(",")):
        name, _, value = item.strip().partition("=")
        unit = "%" if name in METRICS and METRICS[name].ratio else "pp"
        try:
            if name not in METRICS or not value.endswith(unit):
                raise ValueError
            out[name] = float(value.removesuffix(unit))
            if not math.isfinite(out[name]) or out[name] < 0:
                raise ValueError
        except ValueError:
            ratios = ", ".join(n for n, m in METRICS.items() if m.ratio)
            raise UsageError(f"--threshold: {item!r} is not METRIC=N% ({ratios}) or accuracy=Npp, N >= 0") from None
    return out


@dataclass
class Row:
    cell: tuple  # PAIR_KEY
    metric: str
    a: float | None  # medians over rounds
    b: float | None
    effect: str  # "+3.1 % [+1.0, +5.2]" or "-0.20 pp [...]"
    n: int  # paired rounds
    p: float | None  # one-sided, bad direction; Holm-adjusted
    mark: str
    detail: str = ""


def sign_interval(values: list[float]) -> tuple[float, float, float]:
    """(low, high, confidence) for the median: order statistics of the sign test, >= 95 % when n allows;
    with n < 6 the full range, at its own confidence 1 - 2^(1-n)."""
    from scipy.stats import binom

    xs, n = sorted(values), len(values)
    k = max((k for k in range(1, n // 2 + 1) if 2 * binom.cdf(k - 1, n, 0.5) <= 1 - 0.95), default=1)
    return xs[k - 1], xs[n - k], 1 - 2 * float(binom.cdf(k - 1, n, 0.5))


def p_worse(diffs: list[float], bad: str) -> float:
    """One-sided exact (no ties) Wilcoxon signed-rank p that the differences lean the bad way; zeros dropped."""
    from scipy.stats import wilcoxon

    nonzero = [d for d in diffs if d != 0]
    if not nonzero:
        return 1.0
    return float(wilcoxon(nonzero, alternative="greater" if bad == "up" else "less").pvalue)


def holm(ps: list[float]) -> list[float]:
    """Holm-adjusted p-values, in the input's order."""
    order = sorted(range(len(ps)), key=ps.__getitem__)
    out, running = [1.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(ps) - rank) * ps[i]))
        out[i] = running
    return out


def can_reach(n: int, tests: int) -> bool:
    """Whether n pairs can ever give p < ALPHA / tests (Holm's first step): the exact minimum is 2^-n."""
    return tests > 0 and 0.5**n < ALPHA / tests


def _pairs(a: list[Record], b: list[Record], read: Callable[[Record], float | None]) -> list[tuple[float, float]]:
    """(A, B) values of the rounds in which both sides ran ok and measured the metric (pairs by round)."""
    by_round = {r.repeat: read(r) for r in a if r.status == "ok"}
    out = []
    for r in b:
        va, vb = by_round.get(r.repeat), read(r) if r.status == "ok" else None
        if va is not None and vb is not None and math.isfinite(va) and math.isfinite(vb) and (va > 0 or vb > 0):
            out.append((va, vb))
    return out


def _status_row(cell: tuple, a: list[Record], b: list[Record]) -> Row | None:
    """A row about runs that failed (newly failing / fixed / nothing to pair), or None when both sides ran."""
    a_ok, b_ok = [r for r in a if r.status == "ok"], [r for r in b if r.status == "ok"]
    b_failed = [r for r in b if r.status == "failed"]
    if a_ok and b_failed and not [r for r in a if r.status == "failed"]:
        err = (b_failed[0].error or "").splitlines()[0][:120] if b_failed[0].error else ""
        return Row(cell, "-", None, None, "", 0, None, "newly failing",
                   f"B failed in {len(b_failed)} of {len(b)} rounds: {err}")
    if b_ok and not a_ok and any(r.status == "failed" for r in a):
        return Row(cell, "-", None, None, "", 0, None, "fixed", "A failed, B ran")
    if not a_ok or not b_ok:
        side = "A" if not a_ok else "B"
        reasons = sorted({(r.error or r.status).splitlines()[0][:80] for r in (a if side == "A" else b)})
        return Row(cell, "-", None, None, "", 0, None, "not comparable",
                   f"no ok run on side {side}: {'; '.join(reasons)}")
    return None


def _effect(name: str, pairs: list[tuple[float, float]]) -> tuple[float, str, list[float]]:
    """(estimate in the threshold's unit, text with its interval, per-round differences on the test's scale)."""
    m = METRICS[name]
    if m.ratio:
        diffs = [math.log(vb / va) for va, vb in pairs]
        to_pct = lambda d: 100 * math.expm1(d)  # noqa: E731 - a one-line conversion
        est = to_pct(statistics.median(diffs))
        lo, hi, conf = sign_interval(diffs)
        return est, f"{est:+.1f} % [{to_pct(lo):+.1f}, {to_pct(hi):+.1f}]" + _conf(conf), diffs
    diffs = [vb - va for va, vb in pairs]
    est = statistics.median(diffs)
    lo, hi, conf = sign_interval(diffs)
    return est, f"{est:+.2f} pp [{lo:+.2f}, {hi:+.2f}]" + _conf(conf), diffs


def _conf(conf: float) -> str:
    return "" if conf >= 0.95 else f" ({100 * conf:.0f} %)"


def gate(recs: list[Record], thresholds: dict[str, float]) -> tuple[list[Row], str]:
    """Rows per cell and metric for A vs B records (their `repeat` is the round), and a note on the test's power."""
    groups: dict[tuple, dict[str, list[Record]]] = {}
    for r in recs:
        if r.side in ("A", "B"):
            groups.setdefault(tuple(getattr(r, k) for k in PAIR_KEY), {"A": [], "B": []})[r.side].append(r)
    rows: list[Row] = []
    tests: list[tuple[Row, float, float]] = []  # row, one-sided p the bad way, the good way
    for cell in sorted(groups, key=str):
        a, b = groups[cell]["A"], groups[cell]["B"]
        status = _status_row(cell, a, b)
        if status is not None:
            rows.append(status)
            continue
        for name, m in METRICS.items():
            pairs = [(va, vb) for va, vb in _pairs(a, b, m.read) if not m.ratio or (va > 0 and vb > 0)]
            if not pairs:
                continue
            est, text, diffs = _effect(name, pairs)
            row = Row(cell, name, statistics.median(v for v, _ in pairs), statistics.median(v for _, v in pairs),
                      text, len(pairs), None, "unchanged")
            worse = est > thresholds[name] if m.bad == "up" else est < -thresholds[name]
            better = est < -thresholds[name] if m.bad == "up" else est > thresholds[name]
            row.mark = "worse" if worse else "better" if better else "unchanged"
            tests.append((row, p_worse(diffs, m.bad), p_worse(diffs, "down" if m.bad == "up" else "up")))
            rows.append(row)
    return rows, _decide(tests)


def _decide(tests: list[tuple[Row, float, float]]) -> str:
    """Holm over every test; a change beyond its threshold stays only if significant (or the test is powerless).
    Only regressions gate, so only their p-values are corrected; an improvement is told at the plain level."""
    if not tests:
        return "nothing to compare"
    n = min(row.n for row, _, _ in tests)
    powered = can_reach(n, len(tests))
    for (row, _, p_good), p in zip(tests, holm([p for _, p, _ in tests])):
        row.p = p
        if not powered:
            row.detail = "threshold only" if row.mark != "unchanged" else ""
        elif (row.mark == "worse" and p >= ALPHA) or (row.mark == "better" and p_good >= ALPHA):
            row.detail = f"{row.mark} by {row.effect.split(' [')[0]} but Holm p={p:.3f}" if row.mark == "worse" \
                else f"better but p={p_good:.3f}"
            row.mark = "not significant"
    if powered:
        return (f"{n} paired rounds, {len(tests)} tests: one-sided Wilcoxon signed-rank, Holm-corrected, "
                f"alpha {ALPHA}; a change counts when beyond its threshold and significant")
    need = next(k for k in range(n, 64) if can_reach(k, len(tests)))
    return (f"only {n} paired rounds for {len(tests)} tests: the smallest possible p, 2^-{n} = {0.5**n:.3f}, cannot "
            f"reach alpha/{len(tests)} = {ALPHA / len(tests):.4f}, so the thresholds alone decide "
            f"(--rounds {need} or more gives the test its say)")


def shown(cell: tuple) -> tuple[str, str, str]:
    """(task, framework label, device) of a PAIR_KEY tuple."""
    from bench.records.compare import shown as shown_key

    return shown_key(cell, PAIR_KEY)


def fmt(v: float | None) -> str:
    return "–" if v is None else f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"


COLUMNS = ("task", "framework", "device", "metric", "A", "B", "B vs A [95 % CI]", "rounds", "p (Holm)", "verdict",
           "detail")


def table_rows(rows: list[Row]) -> list[list[str]]:
    return [[*shown(r.cell), METRICS[r.metric].label if r.metric in METRICS else r.metric, fmt(r.a), fmt(r.b),
             r.effect, str(r.n or ""), "" if r.p is None else f"{r.p:.3f}", r.mark, r.detail] for r in rows]


def markdown(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * 4 + "---:|" * 5 + "---|---|"]
    for cells in table_rows(rows):
        cells[9] = f"**{cells[9]}**" if cells[9] in REGRESSIONS else cells[9]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"

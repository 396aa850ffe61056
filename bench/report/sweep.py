"""Training-set-size sweeps in a report: learning curves per task, the crossover sizes in words, tables."""
from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from bench.records import Record
from bench.report.tables import fmt_s, spread
from bench.spec import FRAMEWORKS, modes
from bench.spec.sweep import BASELINE


@dataclass
class Point:
    """One training-set size of one row: medians over repeats, with a 95 % t-interval when there are repeats."""

    n: int
    accuracy: float
    accuracy_ci: tuple[float, float] | None
    train_time_s: float | None
    time_ci: tuple[float, float] | None
    runs: int


@dataclass
class Curve:
    label: str  # 'torch', 'sklearn svm'
    framework: str
    device: str
    points: list[Point] = field(default_factory=list)

    @property
    def baseline(self) -> bool:
        return self.framework == BASELINE


Curves = dict[tuple[str, str], list[Curve]]  # (task, dataset) -> its curves


def size_of(r: Record) -> int | None:
    """The examples a record trained on: its subset, or for `all` the whole split it reports."""
    return r.train_size if r.train_size else r.n_train


def curves(records: list[Record]) -> Curves:
    """The learning curves of every (task, dataset) whose ok records cover two or more training-set sizes."""
    groups: dict[tuple[str, str], dict[tuple[str, str, str], dict[int, list[Record]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for r, label in zip(records, budget_labels(records)):
        n = size_of(r)
        if r.status == "ok" and n and r.test_accuracy is not None:
            groups[(r.task, r.dataset)][(label, r.framework, r.device)][n].append(r)
    out: Curves = {}
    for key, rows in groups.items():
        if len({n for by_size in rows.values() for n in by_size}) < 2:
            continue
        order = modes.ordered({lab for lab, _, _ in rows}, FRAMEWORKS)
        out[key] = [Curve(lab, fw, dev, [_point(n, rs) for n, rs in sorted(by_size.items())])
                    for lab in order for (lab2, fw, dev), by_size in sorted(rows.items()) if lab2 == lab]
    return out


def budget_labels(records: list[Record]) -> list[str]:
    """Framework labels, with '(quick, 10 epochs)' where a task's records differ in profile or epochs: a curve
    never mixes training budgets (a baseline's one fit is not an epoch count)."""
    budgets: dict[str, set[tuple[str, int | None]]] = defaultdict(set)
    for r in records:
        budgets[r.task].add((r.profile, r.epochs if r.framework != BASELINE else None))
    out = []
    for r, label in zip(records, modes.framework_labels(records)):
        varied = budgets[r.task]
        parts = [r.profile] if len({p for p, _ in varied}) > 1 else []
        if r.framework != BASELINE and len({e for _, e in varied if e is not None}) > 1:
            parts.append(f"{r.epochs} epoch" + ("s" if r.epochs != 1 else ""))
        out.append(f"{label} ({', '.join(parts)})" if parts else label)
    return out


def _point(n: int, recs: list[Record]) -> Point:
    acc = [r.test_accuracy for r in recs if r.test_accuracy is not None]
    times = [r.train_time_s for r in recs if r.train_time_s is not None]
    a, t = spread(acc), spread(times)
    return Point(n, statistics.median(acc), (a[0], a[1]) if a else None,
                 statistics.median(times) if times else None, (t[0], t[1]) if t else None, len(recs))


def crossover(net: Curve, base: Curve) -> str:
    """Where the network's accuracy overtakes the baseline's, in words, with the gap at the largest size. The
    size is interpolated on a log scale around the last change of sign: from there on the network stays ahead."""
    b = {p.n: p.accuracy for p in base.points}
    common = [(p.n, p.accuracy - b[p.n]) for p in net.points if p.n in b]
    if len(common) < 2:
        return f"{net.label} and {base.label} share fewer than two sizes"
    (first, _), (last, gap) = common[0], common[-1]
    at_last = f"{abs(100 * gap):.2f} pp at {last:,}"
    if all(d > 0 for _, d in common):
        return f"{net.label} is ahead of {base.label} at every size from {first:,} ({at_last})"
    if all(d <= 0 for _, d in common):
        return f"{base.label} stays ahead of (or level with) {net.label} at every size up to {last:,} ({at_last})"
    i = max(k for k, (_, d) in enumerate(common) if d <= 0)  # the last size where the network is not ahead
    if i == len(common) - 1:
        return (f"{net.label} and {base.label} trade places; {base.label} is ahead at the largest size "
                f"({at_last})")
    (n0, d0), (n1, d1) = common[i], common[i + 1]
    at = math.exp(math.log(n0) + (math.log(n1) - math.log(n0)) * (-d0) / (d1 - d0))
    return (f"{net.label} overtakes {base.label} at about {_round(at):,} examples (between {n0:,} and {n1:,}; "
            f"ahead by {at_last})")


def _round(n: float) -> int:
    """Two significant figures: the interpolation is no more precise than that."""
    digits = max(0, int(math.floor(math.log10(n))) - 1)
    return int(round(n / 10**digits) * 10**digits)


def crossovers(cs: list[Curve]) -> list[str]:
    """One sentence per (network, baseline) pair on the same device."""
    nets = [c for c in cs if not c.baseline]
    bases = [c for c in cs if c.baseline]
    return [crossover(n, b) + (f" ({n.device})" if len({c.device for c in nets}) > 1 else "")
            for n in nets for b in bases]


def markdown_section(records: list[Record]) -> list[str]:
    """'## Training-set size' with, per task: accuracy and train-time tables (rows: framework or baseline,
    columns: sizes) and the crossover sentences; nothing when no task was swept."""
    found = curves(records)
    if not found:
        return []
    out = ["## Training-set size", "",
           "Each size is a class-balanced subset drawn from the seed, the same for every framework and baseline; the "
           "evaluation split stays whole. Every network trains the optimizer steps of the whole training split at "
           "every size (small subsets are repeated within an epoch); a baseline fits once. Medians over repeats, "
           "with a 95 % interval where there are repeats.", ""]
    for (task, dataset), cs in found.items():
        sizes = sorted({p.n for c in cs for p in c.points})
        out += [f"### {task} ({dataset})", "", "Test accuracy (%):", ""]
        out += _table(cs, sizes, lambda p: f"{100 * p.accuracy:.2f}" + (
            f" [{100 * p.accuracy_ci[0]:.1f}–{100 * p.accuracy_ci[1]:.1f}]" if p.accuracy_ci else ""))
        out += ["", "Training time (s; a baseline: features and fit):", ""]
        out += _table(cs, sizes, lambda p: fmt_s(p.train_time_s))
        out += ["", *[f"- {s}." for s in crossovers(cs)], ""]
    return out


def _table(cs: list[Curve], sizes: list[int], fmt: object) -> list[str]:
    head = "| framework | device | " + " | ".join(f"{n:,}" for n in sizes) + " |"
    rows = [head, "|---|---|" + "---:|" * len(sizes)]
    for c in cs:
        at = {p.n: p for p in c.points}
        rows.append(f"| {c.label} | {c.device} | " + " | ".join(fmt(at[n]) if n in at else "–"  # type: ignore[operator]
                                                            for n in sizes) + " |")
    return rows

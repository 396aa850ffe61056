"""The optimizer axis in a report: per task, accuracy and training time of every optimizer in every
framework side by side, with the rule and learning rate each ran."""
from __future__ import annotations

import statistics
from collections import defaultdict

from bench.records import Record
from bench.report.tables import fmt_pct, fmt_s, markdown_table
from bench.spec import FRAMEWORKS, TASKS, modes, optimizer_axis
from bench.spec.optimizers import NAMES


def _table(recs: list[Record]) -> list[str]:
    labels = modes.framework_labels(recs)  # 'torch (compiled)' where modes or precisions differ
    fws = modes.ordered(set(labels), FRAMEWORKS)
    cells: dict[tuple[str, str], list[Record]] = defaultdict(list)
    for r, fw in zip(recs, labels):
        cells[(str(r.optimizer), fw)].append(r)
    rows = []
    for name in [n for n in NAMES if any(k[0] == n for k in cells)]:
        rule = optimizer_axis.apply(TASKS[recs[0].task], name).phases[0].optimizer
        row = [name, f"{rule.lr:g}"]
        for fw in fws:
            rs = cells.get((name, fw), [])
            acc = [r.test_accuracy for r in rs if r.test_accuracy is not None]
            secs = [r.train_time_s for r in rs if r.train_time_s is not None]
            row.append(f"{fmt_pct(statistics.median(acc)) if acc else '–'} · "
                       f"{fmt_s(statistics.median(secs)) if secs else '–'} s" if rs else "–")
        rows.append(row)
    return [markdown_table(["optimizer", "learning rate", *fws], rows)]


def markdown_section(records: list[Record]) -> list[str]:
    """One table per (task, dataset, device, profile, epochs, size) that ran two or more optimizers."""
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        if r.status == "ok" and r.optimizer and r.task in TASKS:
            groups[(r.task, r.dataset, r.device, r.profile, r.epochs, r.train_size)].append(r)
    out: list[str] = []
    for (task, dataset, device, profile, epochs, size), recs in groups.items():
        if len({r.optimizer for r in recs}) < 2:
            continue
        n = f", n={size:,}" if size else ""
        out += [f"### {task} on {dataset} ({device}, {profile}, {epochs} epochs{n})", "",
                "Test accuracy · training time per optimizer (medians over repeats; the task's own optimizer is "
                f"{optimizer_axis.own(TASKS[task])}).", "", *_table(recs), ""]
    if not out:
        return []
    return ["## Optimizers", "", "Every rule is exact and the same in every framework (docs/optimizers.md); "
            "learning rates are the spec's per task, untuned.", "", *out]

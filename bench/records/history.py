"""Run history: one JSONL of records per machine under results/history/, and its trend per cell."""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.machine import slug
from bench.records.baseline import machine_of
from bench.records.schema import GROUP_KEY, Record, group_key
from bench.records.store import append as append_records

HISTORY = Path("results") / "history"


def _part(cell: tuple[Any, ...], *names: str) -> list[Any]:
    """Fields of a GROUP_KEY tuple by name."""
    return [cell[GROUP_KEY.index(n)] for n in names]


def machine_file(rec: Record, root: Path = HISTORY) -> Path:
    """The machine's history file: keyed by hardware only, so a framework upgrade stays on one trend."""
    m = machine_of(rec)
    gpu = f"-{slug(m['gpus'][0])}" if m["gpus"] else ""
    return root / f"{slug(m['cpu'])}-{m['cpus']}cpu{gpu}.jsonl"


def append(recs: list[Record], root: Path = HISTORY) -> list[Path]:
    """Append records to their machines' history files (atomic whole lines); returns the files."""
    by_file: dict[Path, list[Record]] = defaultdict(list)
    for r in recs:
        by_file[machine_file(r, root)].append(r)
    for path, group in by_file.items():
        append_records(path, group)
    return sorted(by_file)


@dataclass
class Point:
    """One run of one cell in the history: medians over its ok repeats."""

    cell: tuple
    run_id: str
    started_at: str
    commit: str
    versions: str
    train_time_s: float | None
    accuracy: float | None
    n_ok: int
    n: int


def trend(recs: list[Record]) -> dict[tuple, list[Point]]:
    """Per cell, one point per run in time order (a run's repeats are folded into medians)."""
    runs: dict[tuple, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        runs[group_key(r)][r.run_id].append(r)
    out: dict[tuple, list[Point]] = {}
    for cell, by_run in runs.items():
        points = []
        for run_id, group in by_run.items():
            ok = [r for r in group if r.status == "ok"]
            times = [r.train_time_s for r in ok if r.train_time_s is not None]
            accs = [r.test_accuracy for r in ok if r.test_accuracy is not None]
            versions = ", ".join(f"{k} {v}" for k, v in machine_of(group[0])["versions"].items() if k != "python")
            points.append(Point(cell, run_id, min(r.started_at or "" for r in group),
                                str((group[0].env or {}).get("commit") or "unknown"), versions,
                                statistics.median(times) if times else None,
                                statistics.median(accs) if accs else None, len(ok), len(group)))
        out[cell] = sorted(points, key=lambda p: (p.started_at, p.run_id))
    return dict(sorted(out.items(), key=lambda kv: kv[0]))


def table_rows(points: dict[tuple, list[Point]]) -> tuple[list[str], list[list[str]]]:
    header = ["task", "framework", "device", "profile", "run", "commit", "versions", "train s", "accuracy", "ok"]
    rows = []
    for cell, pts in points.items():
        for p in pts:
            rows.append([*map(str, _part(cell, "task", "framework", "device", "profile")),
                         p.started_at[:16].replace("T", " ") or p.run_id, p.commit, p.versions,
                         "–" if p.train_time_s is None else f"{p.train_time_s:.2f}",
                         "–" if p.accuracy is None else f"{100 * p.accuracy:.2f} %", f"{p.n_ok}/{p.n}"])
    return header, rows


def trend_plots(points: dict[tuple, list[Point]]) -> list[Any]:
    """One plots.Plot per (task, device, profile): train time and accuracy per framework over the runs."""
    from bench.report.plots import colour, figure, to_plot

    groups: dict[tuple, dict[str, list[Point]]] = defaultdict(dict)
    for cell, pts in points.items():
        task, fw, device, profile = _part(cell, "task", "framework", "device", "profile")
        groups[(task, device, profile)][fw] = pts
    out = []
    for (task, device, profile), by_fw in groups.items():
        runs = sorted({(p.started_at, p.run_id, p.commit) for pts in by_fw.values() for p in pts})
        index = {r[1]: i for i, r in enumerate(runs)}
        fig, (ax_t, ax_a) = figure(11, 3.6, ncols=2)
        said = []
        for fw, pts in sorted(by_fw.items()):
            xs = [index[p.run_id] for p in pts]
            ax_t.plot(xs, [p.train_time_s for p in pts], marker="o", label=fw, color=colour(fw))
            ax_a.plot(xs, [None if p.accuracy is None else 100 * p.accuracy for p in pts], marker="o", label=fw,
                      color=colour(fw))
            said.append(f"{fw}: " + ", ".join(
                f"{p.commit[:8]} {'–' if p.train_time_s is None else f'{p.train_time_s:.2f} s'}" for p in pts))
        labels = [f"{c[:8]}\n{s[5:10]}" for s, _, c in runs]
        for ax, title in ((ax_t, "train time (s, median of repeats)"), (ax_a, "test accuracy (%)")):
            ax.set_xticks(range(len(runs)), labels, fontsize=7)
            ax.set_title(title, fontsize=10)
            ax.grid(alpha=0.3)
        ax_t.legend(fontsize=8)
        title = f"{task} on {device} ({profile}): trend over commits"
        fig.suptitle(title, fontsize=11)
        out.append(to_plot(fig, f"trend-{task}-{device}-{profile}", title,
                           f"Line chart, {title}, train time per run: " + "; ".join(said) + "."))
    return out


def markdown(points: dict[tuple, list[Point]]) -> str:
    from bench.report.tables import markdown_table

    header, rows = table_rows(points)
    return "\n".join(["# bench history", "", f"{len(rows)} runs of {len(points)} cells, oldest first; train s and "
                      "accuracy are medians over each run's ok repeats.", "", markdown_table(header, rows), ""])


def html(points: dict[tuple, list[Point]]) -> str:
    """A self-contained page: the trend plots, then the table."""
    from bench.report.html import html_page, markdown_blocks, plots_section

    fws = sorted({_part(cell, "framework")[0] for cell in points})
    body = [b for _, b in markdown_blocks(markdown(points))]
    return html_page("bench history", [body[0], plots_section(trend_plots(points), fws), *body[1:]])

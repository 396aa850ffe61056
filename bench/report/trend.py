"""The history report: a table and trend plots of each cell's runs over commits (bench/records/history.py)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.records.history import Point
from bench.records.schema import GROUP_KEY
from bench.report.html import html_page, markdown_blocks, plots_section
from bench.report.plots import Plot, colour, figure, to_plot
from bench.report.tables import markdown_table


def _part(cell: tuple[Any, ...], *names: str) -> list[Any]:
    """Fields of a GROUP_KEY tuple by name."""
    return [cell[GROUP_KEY.index(n)] for n in names]


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


def trend_plots(points: dict[tuple, list[Point]]) -> list[Plot]:
    """One plot per (task, device, profile): train time and accuracy per framework over the runs."""
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
    header, rows = table_rows(points)
    return "\n".join(["# bench history", "", f"{len(rows)} runs of {len(points)} cells, oldest first; train s and "
                      "accuracy are medians over each run's ok repeats.", "", markdown_table(header, rows), ""])


def html(points: dict[tuple, list[Point]]) -> str:
    """A self-contained page: the trend plots, then the table."""
    fws = sorted({_part(cell, "framework")[0] for cell in points})
    body = [b for _, b in markdown_blocks(markdown(points))]
    return html_page("bench history", [body[0], plots_section(trend_plots(points), fws), *body[1:]])

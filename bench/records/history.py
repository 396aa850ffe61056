"""Run history: one JSONL of records per machine under results/history/, and its trend per cell
(rendered by bench/report/trend.py)."""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.machine import slug
from bench.records.baseline import machine_of
from bench.records.schema import Record, group_key
from bench.records.store import append as append_records

HISTORY = Path("results") / "history"


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

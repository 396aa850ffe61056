"""The regression gate's subcommands: compare (baseline vs current, exit 1 on a regression) and baseline."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from bench import records
from bench.cli.console import err_console, out_console, warn_all
from bench.errors import RecordError, UsageError
from bench.records import baseline, compare


def _side(path: Path) -> list[records.Record]:
    recs, probs = records.collect([path])
    warn_all(probs)
    if not recs:
        raise RecordError(f"{path}: no readable records")
    return records.latest(recs)  # per seed: repeats stay


def cmd_compare(args: argparse.Namespace) -> int:
    if args.format not in ("table", "md"):
        raise UsageError(f"--format: {args.format!r}; choose table or md")
    thresholds = compare.parse_thresholds(args.threshold)
    current = _side(args.current)
    base_path, warning = baseline.resolve(args.baseline, current, args.baselines)
    sides = [_side(base_path), current]
    compare.check_overlap(sides[0], sides[1], str(base_path), str(args.current))
    diff = baseline.machine_difference(sides[0], sides[1])
    if warning or diff:
        err_console.print(f"[bold yellow]warning: baseline from another machine or framework versions[/] — "
                          f"{warning or diff}: time and memory changes may be the machine's, not the code's",
                          highlight=False)
    rows = compare.compare(sides[0], sides[1], thresholds)
    if rows and all(r.mark == "not comparable" for r in rows):
        reasons = sorted({r.detail.split(" [")[0] for r in rows})
        raise UsageError(f"no cell could be compared ({'; '.join(reasons)}): a gate that compares nothing "
                         "cannot pass; refresh the baseline (bench baseline save --force)")
    if args.format == "md":
        out_console.print(compare.markdown(rows), markup=False, highlight=False, soft_wrap=True)
    else:
        out_console.print(_table(rows))
    bad = [r for r in rows if r.mark in compare.REGRESSIONS]
    err_console.print(f"compare: {len(bad)} regression(s) in {len({r.cell for r in rows})} cells" if bad else
                      f"compare: no regression in {len({r.cell for r in rows})} cells")
    return 1 if bad else 0


def _table(rows: list[compare.Row]) -> Table:
    table = Table(title="bench compare")
    for col in ("task", "framework", "device", "metric", "baseline", "current", "change", "mark", "detail"):
        table.add_column(col, justify="right" if col in ("baseline", "current", "change") else "left")
    colour = {"worse": "red", "newly failing": "red", "better": "green", "fixed": "green"}
    for r in rows:
        mark = f"[{colour[r.mark]}]{r.mark}[/]" if r.mark in colour else r.mark
        table.add_row(*map(str, compare.shown(r.cell)), r.metric, compare.fmt_value(r.baseline),
                      compare.fmt_value(r.current), r.change, mark,
                      r.detail)
    return table


def cmd_baseline(args: argparse.Namespace) -> int:
    if args.action == "save":
        folder, n = baseline.save(args.name, args.paths, args.dir, args.force)
        err_console.print(f"baseline {args.name}: {n} records saved in {folder}\n"
                          f"compare with: python -m bench compare {args.name} RESULTS")
        return 0
    found = baseline.available(args.dir)
    if not found:
        err_console.print(f"no baselines under {args.dir} (make one with: python -m bench baseline save NAME RESULTS)")
        return 0
    table = Table(title=f"baselines in {args.dir}", header_style="bold")
    for col in ("name", "machine", "versions", "tasks", "records", "created"):
        table.add_column(col)
    for m in found:
        mach = m.get("machine") or {}
        table.add_row(str(m.get("name")), f"{mach.get('cpu')} ({mach.get('cpus')} CPUs)"
                      + (f", {', '.join(mach.get('gpus') or [])}" if mach.get("gpus") else ""),
                      ", ".join(f"{k} {v}" for k, v in (mach.get("versions") or {}).items()),
                      ", ".join(m.get("tasks") or []), str(m.get("records")), str(m.get("created_at", ""))[:16])
    out_console.print(table)
    return 0

"""`bench report`: re-render the tables and report files from records, or the history trend."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from bench import records
from bench.cli.console import err_console, out_console, warn_all
from bench.errors import RecordError, UsageError
from bench.report import export
from bench.report.markdown import spec_mismatches
from bench.report.tables import rich_table


def cmd_report(args: argparse.Namespace) -> int:
    paths = export.plan(args.format, args.output)  # bad --format / --output: one error, nothing read or written
    if args.history:
        return _history(args, paths)
    if not args.paths:
        raise UsageError("report: give RESULTS (records files or run folders), or --history")
    recs, probs = records.collect(args.paths, latest_per_file=True)  # as `bench run --resume` shows them
    probs += spec_mismatches(recs)
    warn_all(probs)
    if not recs:
        raise RecordError(f"no readable records in {', '.join(map(str, args.paths))}")
    out_console.print(rich_table(recs, title="bench report"))
    export.write_reports(recs, probs, paths)
    for path in paths.values():
        err_console.print(f"report: {path}", highlight=False)
    return 0


def _history(args: argparse.Namespace, paths: dict[str, Path]) -> int:
    from bench.records import history
    from bench.report import trend

    sources = args.paths or [history.HISTORY]
    if not args.paths and not history.HISTORY.is_dir():
        raise RecordError(f"no history in {history.HISTORY}: record runs with `bench run --history`, "
                          "or pass history files")
    recs, probs = records.collect(sources)
    warn_all(probs)
    if not recs:
        raise RecordError(f"no readable records in {', '.join(map(str, sources))}")
    points = history.trend(recs)
    header, rows = trend.table_rows(points)
    table = Table(title="bench history (oldest first)", header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if i >= 7 else "left")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    rendered = {fmt: (trend.markdown(points).encode() if fmt == "md" else trend.html(points).encode()
                      if fmt == "html" else export.render(fmt, recs)) for fmt in paths}
    for fmt, path in paths.items():
        export.write(path, rendered[fmt])
        err_console.print(f"report: {path}", highlight=False)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    """`bench history export`: each cell's latest run for github-action-benchmark or Bencher."""
    from bench.records import history
    from bench.report import dashboards

    if args.format not in dashboards.FORMATS:
        raise UsageError(f"--format: {args.format!r}; choose {' or '.join(dashboards.FORMATS)}")
    sources = args.paths or [history.HISTORY]
    recs, probs = records.collect(sources)
    warn_all(probs)
    if not recs:
        raise RecordError(f"no readable records in {', '.join(map(str, sources))} (record runs with "
                          "`bench run --history`, or pass records files)")
    text = dashboards.export(recs, args.format)
    if args.output is None:
        out_console.print(text, markup=False, highlight=False, soft_wrap=True, end="")
    else:
        export.write(args.output, text.encode())
        err_console.print(f"history export: {args.output}", highlight=False)
    return 0

"""`bench verify`: the same weights and inputs through every framework; exit 1 when any pair differs."""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.table import Table

from bench.cli.console import err_console, out_console
from bench.cli.run import config
from bench.data.images import SAMPLE_PHOTOS
from bench.runner.verify import imagenet_top5, problems, run_verify


def cmd_verify(args: argparse.Namespace) -> int:
    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench-verify-"))
    cfg = config(args, ("cpu",), out, kind="logits")
    outcomes, diffs = run_verify(cfg)
    table = Table(title="logit parity: same weights, same inputs, fp32 on CPU", header_style="bold")
    for col in ("task", "pair", "max |Δ logit|", "tolerance", "result"):
        table.add_column(col, justify="left" if col in ("task", "pair") else "right")
    for d in diffs:
        table.add_row(d.task, f"{d.a} vs {d.b}", f"{d.max_abs_diff:.2e}", f"{d.tolerance:.0e}",
                      "[green]ok[/]" if d.ok else "[red]FAIL[/]")
    out_console.print(table)
    for (task, fw), per_photo in imagenet_top5(outcomes).items():
        shown = "; ".join(f"{photo} {v}" for photo, v in zip(SAMPLE_PHOTOS, per_photo))
        out_console.print(f"{task}/{fw}: ImageNet top-5: {shown}", highlight=False)
    found = problems(outcomes, diffs)
    for p in found:
        err_console.print(f"[red]verify:[/] {p}", highlight=False)
    if not found:
        err_console.print(f"verify: {len(diffs)} framework pairs agree within tolerance")
    return 1 if found else 0

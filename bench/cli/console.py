"""The two rich consoles every subcommand prints through: results on stdout, messages on stderr."""
from __future__ import annotations

import sys

from rich.console import Console

from bench.records import summarize

# Piped output (CI logs, files) is not wrapped at 80 columns: tables stay one row per line.
out_console = Console() if sys.stdout.isatty() else Console(width=200)
err_console = Console(stderr=True, soft_wrap=True)  # long paths stay whole in logs


def warn_all(problems: list[str]) -> None:
    """Warnings about damaged or foreign record lines: the first few, then how many more."""
    for p in summarize(problems):
        err_console.print(f"[yellow]warning:[/] {p}", highlight=False)

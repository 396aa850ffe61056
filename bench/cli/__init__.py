"""Command line: run | ab | list | verify | report | compare | baseline | history; thin handlers that parse, validate,
call the parts below and print. Bad input is one line and exit 2; Ctrl-C is exit 130."""
from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from bench.errors import BenchError

    console = Console(stderr=True)
    try:
        from bench.cli.parser import build_parser

        args = build_parser().parse_args(argv)
        return int(_handler(args.command)(args))
    except BenchError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]")
        return 130


def _handler(command: str) -> Callable[[argparse.Namespace], int]:
    """The cmd_<command> function, imported only when that subcommand runs."""
    import importlib

    module = {"run": "run", "ab": "ab", "verify": "verify", "list": "listing", "report": "report", "compare": "gate",
              "baseline": "gate", "history": "report"}[command]
    handler: Callable[[argparse.Namespace], int] = getattr(importlib.import_module(f"bench.cli.{module}"),
                                                            f"cmd_{command}")
    return handler

"""`bench ab`: validate both sides and the cells, run the interleaved rounds, print the paired gate."""
from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from rich.table import Table

from bench import records
from bench.cli.args import choices, frameworks, gpu_indices, pythons
from bench.cli.console import err_console, out_console
from bench.cli.run import config
from bench.errors import UsageError
from bench.files import write_atomic
from bench.records import Record, paired
from bench.report import export
from bench.runner import ab
from bench.runner.config import new_run_id
from bench.spec import DEVICES
from bench.spec.sweep import BASELINE


def sides(args: argparse.Namespace) -> tuple[ab.Side, ab.Side]:
    a, b = args.a_opt or args.a_pos, args.b_opt or args.b_pos
    if args.a_opt and args.a_pos or args.b_opt and args.b_pos or (args.a_opt or args.b_opt) and args.b_pos:
        raise UsageError("give each side once: bench ab A B, or bench ab --a A --b B")
    out = (ab.make_side("A", a, ab.env_items(args.env_a), pythons),
           ab.make_side("B", b, ab.env_items(args.env_b), pythons))
    ab.check_clean(out)
    return out


def run_args(args: argparse.Namespace, cfg_data_root: Path) -> tuple[str, ...]:
    """The `bench run` options both sides get; paths made absolute (a revision side runs in its worktree)."""
    out = ["--task", args.task, "--framework", args.framework, "--device", args.device, "--profile", args.profile,
           "--mode", args.mode, "--precision", args.precision, "--timeout", str(args.timeout),
           "--data-root", str(cfg_data_root.resolve())]
    for name in ("dataset", "epochs", "threads", "gpu"):
        if getattr(args, name) is not None:
            out += [f"--{name}", str(getattr(args, name))]
    # only what differs from bench run's defaults: an older revision side may not know the option
    out += ["--devices", str(args.devices)] if args.devices != 1 else []
    out += ["--warm-caches"] if args.warm_caches else []
    out += ["--no-inference"] if args.no_inference else []
    return tuple(out)


def cmd_ab(args: argparse.Namespace) -> int:
    if args.format not in ("table", "md"):
        raise UsageError(f"--format: {args.format!r}; choose table or md")
    if args.python:
        raise UsageError("--python: in bench ab the interpreters belong to a side: --a torch=EXE --b torch=EXE")
    thresholds = paired.parse_thresholds(args.threshold)
    if BASELINE in frameworks(args.framework):
        raise UsageError(f"--framework {BASELINE}: bench ab compares framework builds; "
                         "run the baselines with bench run")
    pair = sides(args)
    run_id = new_run_id()
    out = args.out if args.out is not None else Path("results") / f"ab-{run_id}"
    existed = out.exists()
    # The same checks as bench run (tasks, frameworks, data prepared once), then the folder is made.
    cfg = config(args, choices(args.device, DEVICES, "device"), out, profile=args.profile, dataset=args.dataset,
                 epochs=args.epochs, seed=args.seed, repeats=1, mode=args.mode, precision=args.precision,
                 n_devices=args.devices, gpus=gpu_indices(args.gpu), warm_caches=args.warm_caches,
                 inference=not args.no_inference, **({"threads": args.threads} if args.threads else {}))
    abc = ab.ABConfig(pair, args.rounds, run_args(args, cfg.data_root), args.seed, out.resolve(), run_id)
    if pair[0].same_as(pair[1]):
        err_console.print("note: A and B are the same: an A/A run, which measures the noise (every verdict should be "
                          "unchanged)", highlight=False)
    err_console.print(f"bench ab {run_id}: A = {pair[0].describe()}, B = {pair[1].describe()}; {args.rounds} "
                      f"rounds, alternating order; results in {out}", highlight=False)
    abc.save()
    try:
        recs = _rounds(abc)
    except ab.SideFailed:
        if not existed and not (out / records.RECORDS_FILE).exists():
            shutil.rmtree(out, ignore_errors=True)  # bad input: nothing half-written
        raise
    return _verdict(abc, recs, thresholds, args.format)


def _rounds(abc: ab.ABConfig) -> list[Record]:
    started = time.monotonic()

    def on_side(k: int, side: ab.Side, recs: list[Record]) -> None:
        ok = sum(r.status == "ok" for r in recs)
        err_console.print(f"round {k + 1}/{abc.rounds} {side.name}: {ok}/{len(recs)} cells ok "
                          f"({time.monotonic() - started:.0f} s)", highlight=False)

    with ab.checkouts(abc.sides) as code:
        return ab.run_rounds(abc, code, on_side)


def _verdict(abc: ab.ABConfig, recs: list[Record], thresholds: dict[str, float], fmt: str) -> int:
    rows, note = paired.gate(recs, thresholds)
    head = f"A = {abc.sides[0].describe()}\n\nB = {abc.sides[1].describe()}\n\n{note}\n\n"
    write_atomic(abc.out / "ab.md", f"# bench ab {abc.run_id}\n\n{head}{paired.markdown(rows)}")
    export.run_reports(recs, abc.out)  # the usual report, A and B side by side
    if fmt == "md":
        out_console.print(head + paired.markdown(rows), markup=False, highlight=False, soft_wrap=True)
    else:
        out_console.print(_table(rows, abc.run_id))
    err_console.print(note, highlight=False)
    bad = [r for r in rows if r.mark in paired.REGRESSIONS]
    cells = len({r.cell for r in rows})
    err_console.print(f"ab: {len(bad)} regression(s) in {cells} cells" if bad else f"ab: no regression in {cells} "
                      f"cells; records and report in {abc.out}", highlight=False)
    return 1 if bad else 0


def _table(rows: list[paired.Row], run_id: str) -> Table:
    table = Table(title=f"bench ab {run_id}: B vs A")
    for col in paired.COLUMNS:
        table.add_column(col, justify="right" if col in ("A", "B", "rounds", "p (Holm)") else "left")
    colour = {"worse": "red", "newly failing": "red", "better": "green", "fixed": "green"}
    for cells in paired.table_rows(rows):
        cells[9] = f"[{colour[cells[9]]}]{cells[9]}[/]" if cells[9] in colour else cells[9]
        table.add_row(*cells)
    return table

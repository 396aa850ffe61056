"""`bench run`: validate everything first, then train every cell, print the table, write the reports."""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import data, machine, records
from bench.cli.args import (
    choices,
    data_root,
    frameworks,
    gpu_indices,
    pythons,
    slurm_options,
    train_sizes,
    writable_folder,
)
from bench.cli.console import err_console, out_console, warn_all
from bench.data import subsets
from bench.errors import UsageError
from bench.harness.cell import Cell
from bench.records import Record
from bench.report import export
from bench.report.tables import rich_table
from bench.runner import RunConfig, plan, run
from bench.runner.config import new_run_id
from bench.runner.isolation import visible_gpus
from bench.spec import DEVICES, TASKS, modes, optimizer_axis, spec_hash, sweep
from bench.spec.optimizers import NAMES


def config(args: argparse.Namespace, devices: tuple[str, ...], out: Path | None, kind: str = "train",
           **options: Any) -> RunConfig:
    """Validate every argument and prepare the data (one error before any cell, downloading once); only
    then create the output folder: bad input writes nothing."""
    run_id = new_run_id()
    if kind != "train" and sweep.BASELINE in frameworks(args.framework):
        raise UsageError(f"--framework {sweep.BASELINE}: the classical baselines have no logits to verify; "
                         "bench verify compares tf, torch and jax")
    cfg = RunConfig(tasks=choices(args.task, list(TASKS), "task"), frameworks=frameworks(args.framework),
                    devices=devices, data_root=data_root(args.data_root), timeout_s=args.timeout,
                    pythons=pythons(args.python), out=out if out is not None else Path("results") / run_id,
                    run_id=run_id, **options)
    for t in cfg.tasks:
        data.prepare(TASKS[t], cfg.dataset_of(t), TASKS[t].profiles[cfg.profile], cfg.data_root, kind)
        if cfg.train_sizes != (None,):
            task = TASKS[t]
            pool = len(data.load(task, cfg.dataset_of(t), task.profiles[cfg.profile], cfg.data_root).train)
            subsets.check_sizes(cfg.train_sizes, pool, task.batch_size, task.num_classes,
                                f"{t} ({cfg.dataset_of(t)}, profile {cfg.profile})")
    if cfg.executor == "slurm":  # unknown --slurm-opt keys, no sbatch here: one error before anything is written
        from bench.runner import slurm_options  # imports submitit: only for SLURM runs

        slurm_options.check(cfg)
    _check_gpus(cfg)
    writable_folder(cfg.out)
    return cfg


def _options(args: argparse.Namespace) -> dict[str, Any]:
    opts = dict(profile=args.profile, dataset=args.dataset, epochs=args.epochs, seed=args.seed, repeats=args.repeats,
                same_seed=args.same_seed, mode=args.mode, precision=args.precision)
    opts |= {"train_sizes": train_sizes(args.train_size),
             "baselines": choices(args.baseline, _all_baselines(), "baseline") if args.baseline else (),
             "optimizers": choices(args.optimizer, NAMES, "optimizer") if args.optimizer else (),
             "inference": not args.no_inference, "n_devices": args.devices, "executor": args.executor,
             "slurm_options": slurm_options(args.slurm_opt), "gpus": gpu_indices(args.gpu),
             "warm_caches": args.warm_caches}
    return opts | ({"threads": args.threads} if args.threads else {})


def _check_gpus(cfg: RunConfig) -> None:
    """Here (a local run): --gpu's indices must exist among the GPUs this process sees, before any cell runs."""
    if "gpu" not in cfg.devices or cfg.executor != "local":  # a SLURM node's GPUs are known on the node
        return
    visible_gpus(os.environ.get("CUDA_VISIBLE_DEVICES"), cfg.gpu_indices(), cfg.n_devices)  # raises UsageError
    found = len(machine.gpu_models())
    if found and "CUDA_VISIBLE_DEVICES" not in os.environ and max(cfg.gpu_indices()) >= found:
        raise UsageError(f"--gpu {','.join(map(str, cfg.gpu_indices()))}: nvidia-smi finds {found} GPUs here; "
                         f"choose indices 0..{found - 1}")


def _all_baselines() -> list[str]:
    return list(dict.fromkeys(b.name for t in TASKS for b in sweep.baselines(t)))


def _check_resume(args: argparse.Namespace) -> None:
    if args.resume is None:
        return
    if args.out is not None and args.out.resolve() != args.resume.resolve():
        raise UsageError("--resume DIR continues the run in DIR; leave out --out (or give the same folder)")
    if not (args.resume / records.RECORDS_FILE).is_file():
        raise UsageError(f"--resume {args.resume}: no {records.RECORDS_FILE} there, so no run to continue; "
                         "start one without --resume")


def resume_state(folder: Path, cfg: RunConfig) -> tuple[list[Record], set[tuple[Any, ...]]]:
    """The folder's records, and the cells of this command that already have an ok record there."""
    previous, problems = records.read_file(folder / records.RECORDS_FILE)
    warn_all(problems)
    planned = {records.cell_key(c) for c in plan(cfg)}
    for r in previous:
        now = spec_hash(optimizer_axis.apply(TASKS[r.task], r.optimizer))
        if records.cell_key(r) in planned and r.spec_hash != now:
            raise UsageError(f"--resume {folder}: its {r.task} records come from another version of the spec "
                             f"(hash {r.spec_hash}, now {now}); start a new --out")
    done = {records.cell_key(r) for r in records.latest(previous) if r.status == "ok"}
    return previous, done & planned


def cmd_run(args: argparse.Namespace) -> int:
    devices = choices(args.device, DEVICES, "device")
    _check_resume(args)
    cfg = config(args, devices, args.resume or args.out, **_options(args))
    previous, skip = resume_state(args.resume, cfg) if args.resume is not None else ([], set())
    if args.history is not None:
        writable_folder(args.history, "--history")  # now: a bad --history must not surface after training
    if "gpu" in devices and not machine.gpu_models():
        err_console.print("[yellow]note:[/] nvidia-smi finds no GPU; GPU cells will be skipped if no framework "
                          "sees one")
    n_cells = len(plan(cfg)) - len(skip)
    resumed = f" ({len(skip)} already done, kept)" if skip else ""
    err_console.print(f"bench run {cfg.run_id}: {n_cells} cells{resumed}, profile {cfg.profile}, mode {cfg.mode}, "
                      f"precision {cfg.precision}, results in {cfg.out}")
    new, interrupted = _train(cfg, n_cells, skip)
    # The report covers the whole folder: on resume, each cell's latest record (old ok ones kept).
    recs = records.latest(previous + new)
    _report(cfg, recs)
    if args.history is not None and new:
        _history(args.history, new, cfg.out)
    if interrupted:
        stopped = sum(r.status == "failed" and (r.error or "").startswith("interrupted") for r in new)
        err_console.print(f"[red]interrupted:[/] {len(new)} cells recorded ({stopped} of them as failed: "
                          f"interrupted), {n_cells - len(new)} not run; to finish, repeat the command with "
                          f"--resume {cfg.out}")
        return 130
    return _exit_code(cfg, recs)


def _train(cfg: RunConfig, n_cells: int, skip: set[tuple[Any, ...]]) -> tuple[list[Record], bool]:
    """Run the cells under a progress display: a bar per cell in flight (a SLURM job's: queued, running), a
    line per finished cell."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    overall = progress.add_task("cells", total=n_cells)
    bars: dict[tuple[Any, ...], Any] = {}  # cell key -> its bar

    def on_event(cell: Cell, ev: dict[str, Any]) -> None:
        key, kind = records.cell_key(cell), ev.get("event")
        if key not in bars and kind in ("queued", "running", "start"):
            bars[key] = progress.add_task(f"  {cell.label()}", total=1)
        if kind in ("queued", "running"):  # a SLURM job's state (bench/runner/slurm.py)
            where = f" on {ev['node']}" if kind == "running" and ev.get("node") else ""
            why = f", {ev['reason']}" if kind == "queued" and ev.get("reason") else ""
            progress.update(bars[key], description=f"  {cell.label()}: {kind}{where} (job {ev.get('job_id')}{why})")
        elif kind == "start":
            progress.update(bars[key], total=ev.get("epochs") or 1)
        elif kind == "epoch" and key in bars:
            progress.update(bars[key], completed=ev["epoch"])

    def on_record(rec: Record) -> None:
        if records.cell_key(rec) in bars:
            progress.remove_task(bars.pop(records.cell_key(rec)))
        progress.advance(overall)
        mark = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]"}.get(rec.status, "[red]failed[/]")
        detail = (f"accuracy {100 * rec.test_accuracy:.2f} %, train {rec.train_time_s:.1f} s"
                  if rec.status == "ok" and rec.test_accuracy is not None and rec.train_time_s is not None
                  else (rec.error or "").splitlines()[0][:160] if rec.error else "")
        name = modes.label(rec.framework, rec.device, rec.mode, rec.precision, rec.devices)
        size = f" n={rec.train_size:,}" if rec.train_size else ""
        size += f" {rec.optimizer}" if optimizer_axis.off_default(rec.task, rec.optimizer) else ""
        progress.console.print(f"{rec.task}{size}/{name}/{rec.device}: {mark} {detail}", highlight=False)

    with progress:
        return run(cfg, on_event=on_event, on_record=on_record, skip=skip)


def _report(cfg: RunConfig, recs: list[Record]) -> None:
    written, html_problem = export.run_reports(recs, cfg.out)  # report.md and report.html
    out_console.print(rich_table(recs, title=f"bench {cfg.run_id} ({cfg.profile})"))
    if html_problem:
        err_console.print(f"[yellow]warning:[/] {html_problem}", highlight=False)
    err_console.print(f"records: {cfg.out / records.RECORDS_FILE}\nreport:  " + "\n         ".join(map(str, written)),
                      highlight=False)


def _history(folder: Path, new: list[Record], out: Path) -> None:
    from bench.records import history

    try:
        files = history.append(new, folder)
        err_console.print(f"history: {', '.join(map(str, files))}")
    except OSError as exc:  # the run's own records are already safe in `out`
        err_console.print(f"[yellow]warning:[/] history not written ({exc.strerror or exc}); the records are in {out}",
                          highlight=False)


def _exit_code(cfg: RunConfig, recs: list[Record]) -> int:
    """0 when every cell of this command ran (skips allowed if one ran), else 1."""
    planned = {records.cell_key(c) for c in plan(cfg)}
    recs = [r for r in recs if records.cell_key(r) in planned]
    failed = [r for r in recs if r.status == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(recs)} cells failed[/] (details in the report and logs/)")
        return 1
    if not any(r.status == "ok" for r in recs):
        err_console.print("[red]no cell ran[/]: every cell was skipped (see the reasons above)")
        return 1
    return 0

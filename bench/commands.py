"""What each subcommand does behind the thin CLI: run, list, verify, report (compare, baseline: bench/gate.py)."""
from __future__ import annotations

import argparse
import importlib.metadata
import tempfile
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from bench import data, envinfo, export, modes, records, report
from bench.cli import choices, data_root, installed, pythons
from bench.errors import RecordError, UsageError
from bench.runner import RunConfig, run
from bench.spec import dataset_names, DEVICES, FRAMEWORKS, PROFILES, TASKS, param_count
from bench.worker import Cell
from bench.console import err_console, out_console
from bench.gate import cmd_baseline, cmd_compare  # noqa: F401 - the CLI dispatches on cmd_<name> here


def _writable_folder(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{__import__('os').getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"cannot write to {path} ({exc.strerror or exc}); pass a writable --out") from None
    return path


def _planned_keys(cfg: RunConfig) -> list[tuple]:
    """records.cell_key of every cell the command asks for (runner.plan writes nothing)."""
    from bench.runner import plan

    return [records.cell_key(c) for c in plan(cfg)]


def _resume_state(folder: Path, cfg: RunConfig) -> tuple[list[records.Record], set[tuple]]:
    """The folder's records, and the cells of this command that already have an ok record there."""
    from bench.spec import spec_hash

    previous, problems = records.read_file(folder / records.RECORDS_FILE)
    for p in problems:
        err_console.print(f"[yellow]warning:[/] {p}", highlight=False)
    planned = set(_planned_keys(cfg))
    for r in previous:
        if records.cell_key(r) in planned and r.spec_hash != spec_hash(TASKS[r.task]):
            raise UsageError(f"--resume {folder}: its {r.task} records come from another version of the spec "
                             f"(hash {r.spec_hash}, now {spec_hash(TASKS[r.task])}); start a new --out")
    done = {records.cell_key(r) for r in records.latest(previous) if r.status == "ok"}
    return previous, done & planned


def _config(args: argparse.Namespace, devices: list[str], profile: str, out: Path | None,
            kind: str = "train") -> RunConfig:
    """Validate every argument first; only then create the output folder (bad input writes nothing)."""
    cfg = RunConfig(
        tasks=choices(args.task, list(TASKS), "task"),
        frameworks=choices(args.framework, FRAMEWORKS, "framework"),
        devices=devices, profile=profile, data_root=data_root(args.data_root),
        timeout_s=args.timeout, pythons=pythons(args.python),
    )
    dataset = getattr(args, "dataset", None)
    if dataset is not None:
        if dataset not in dataset_names():
            raise UsageError(f"unknown dataset {dataset!r}; choose from {', '.join(dataset_names())}")
        for t in cfg.tasks:
            if dataset not in TASKS[t].datasets:
                raise UsageError(f"task {t} does not run on {dataset}; it takes {', '.join(TASKS[t].datasets)}")
        cfg.dataset = dataset
    prof = PROFILES[profile]
    for t in cfg.tasks:  # missing or corrupt data: one error now, not one failed cell per framework
        data.prepare(TASKS[t], cfg.dataset or TASKS[t].datasets[0], prof, cfg.data_root, kind)
    cfg.out = _writable_folder(out if out is not None else Path("results") / cfg.run_id)
    return cfg


def cmd_run(args: argparse.Namespace) -> int:
    devices = choices(args.device, DEVICES, "device")
    if args.profile not in PROFILES:
        raise UsageError(f"unknown profile {args.profile!r}; choose from {', '.join(PROFILES)}")
    if args.mode not in modes.MODES:
        raise UsageError(f"--mode: unknown mode {args.mode!r}; choose from {', '.join(modes.MODES)}")
    if args.precision not in modes.PRECISIONS:
        raise UsageError(f"--precision: unknown precision {args.precision!r}; choose from {', '.join(modes.PRECISIONS)}")
    if not args.same_seed and args.seed + args.repeats - 1 > 2**32 - 1:
        raise UsageError(f"--seed {args.seed} with --repeats {args.repeats} goes past the largest seed 2**32-1")
    if args.resume is not None:
        if args.out is not None and args.out.resolve() != args.resume.resolve():
            raise UsageError("--resume DIR continues the run in DIR; leave out --out (or give the same folder)")
        if not (args.resume / records.RECORDS_FILE).is_file():
            raise UsageError(f"--resume {args.resume}: no {records.RECORDS_FILE} there, so no run to continue; "
                             "start one without --resume")
    cfg = _config(args, devices, args.profile, args.resume or args.out)
    cfg.epochs, cfg.seed, cfg.repeats, cfg.same_seed = args.epochs, args.seed, args.repeats, args.same_seed
    cfg.mode, cfg.precision = args.mode, args.precision
    if args.threads:
        cfg.threads = args.threads
    previous, skip = _resume_state(args.resume, cfg) if args.resume is not None else ([], set())
    if args.history is not None:
        _writable_folder(args.history)  # checked now: a bad --history must not surface after an hour of training
    if "gpu" in devices and not envinfo.gpu_models():
        err_console.print("[yellow]note:[/] nvidia-smi finds no GPU; GPU cells will be skipped if no framework sees one")
    n_cells = len(_planned_keys(cfg)) - len(skip)
    resumed = f" ({len(skip)} already done, kept)" if skip else ""
    err_console.print(f"bench run {cfg.run_id}: {n_cells} cells{resumed}, profile {cfg.profile}, mode {cfg.mode}, "
                      f"precision {cfg.precision}, results in {cfg.out}")
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err_console, transient=True)
    overall = progress.add_task("cells", total=n_cells)
    current: dict[str, Any] = {}

    def on_event(cell: Cell, ev: dict[str, Any]) -> None:
        if ev.get("event") == "start":
            current["id"] = progress.add_task(f"  {cell.label()}", total=ev.get("epochs") or 1)
        elif ev.get("event") == "epoch" and "id" in current:
            progress.update(current["id"], completed=ev["epoch"])

    def on_record(rec: records.Record) -> None:
        if "id" in current:
            progress.remove_task(current.pop("id"))
        progress.advance(overall)
        mark = {"ok": "[green]ok[/]", "skipped": "[yellow]skipped[/]"}.get(rec.status, "[red]failed[/]")
        detail = (f"accuracy {100 * rec.test_accuracy:.2f} %, train {rec.train_time_s:.1f} s"
                  if rec.status == "ok" and rec.test_accuracy is not None else (rec.error or "").splitlines()[0][:160])
        progress.console.print(f"{rec.task}/{rec.framework}/{rec.device}: {mark} {detail}", highlight=False)

    with progress:
        new, interrupted = run(cfg, on_event=on_event, on_record=on_record, skip=skip)
    # The report covers the whole folder: on resume, each cell's latest record (old ok ones kept).
    recs = records.latest(previous + new)
    written, html_problem = export.run_reports(recs, cfg.out)  # report.md and report.html
    out_console.print(report.rich_table(recs, title=f"bench {cfg.run_id} ({cfg.profile})"))
    if html_problem:
        err_console.print(f"[yellow]warning:[/] {html_problem}", highlight=False)
    err_console.print(f"records: {cfg.out / records.RECORDS_FILE}\nreport:  " + "\n         ".join(map(str, written)),
                      highlight=False)
    if args.history is not None and new:
        from bench import history

        try:
            files = history.append(new, args.history)
            err_console.print(f"history: {', '.join(map(str, files))}")
        except OSError as exc:  # the run's own records are already safe in cfg.out
            err_console.print(f"[yellow]warning:[/] history not written ({exc.strerror or exc}); "
                              f"the records are in {cfg.out}", highlight=False)
    if interrupted:
        not_run = n_cells - len(new)
        err_console.print(f"[red]interrupted:[/] {len(new)} cells recorded (the last one as failed), {not_run} not "
                          f"run; to finish, repeat the command with --resume {cfg.out}")
        return 130
    planned = set(_planned_keys(cfg))
    recs = [r for r in recs if records.cell_key(r) in planned]  # the exit code is about this command's cells
    failed = [r for r in recs if r.status == "failed"]
    if failed:
        err_console.print(f"[red]{len(failed)} of {len(recs)} cells failed[/] (details in the report and logs/)")
        return 1
    if not any(r.status == "ok" for r in recs):
        err_console.print("[red]no cell ran[/]: every cell was skipped (see the reasons above)")
        return 1
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from bench.verify import problems, run_verify

    out = args.out if args.out is not None else Path(tempfile.mkdtemp(prefix="bench-verify-"))
    cfg = _config(args, ["cpu"], "smoke", out, kind="logits")
    outcomes, diffs = run_verify(cfg)
    table = Table(title="logit parity: same weights, same batch, fp32 on CPU", header_style="bold")
    for col in ("task", "pair", "max |Δ logit|", "tolerance", "result"):
        table.add_column(col, justify="left" if col in ("task", "pair") else "right")
    for d in diffs:
        table.add_row(d.task, f"{d.a} vs {d.b}", f"{d.max_abs_diff:.2e}", f"{d.tolerance:.0e}",
                      "[green]ok[/]" if d.ok else "[red]FAIL[/]")
    out_console.print(table)
    from bench.images import SAMPLE_PHOTOS
    from bench.verify import imagenet_top5

    for (task, fw), per_photo in imagenet_top5(outcomes).items():
        shown = "; ".join(f"{photo} {v}" for photo, v in zip(SAMPLE_PHOTOS, per_photo))
        out_console.print(f"{task}/{fw}: ImageNet top-5: {shown}", highlight=False)
    found = problems(outcomes, diffs)
    for p in found:
        err_console.print(f"[red]verify:[/] {p}", highlight=False)
    if not found:
        err_console.print(f"verify: {len(diffs)} framework pairs agree within tolerance")
    return 1 if found else 0


def cmd_report(args: argparse.Namespace) -> int:
    paths = export.plan(args.format, args.output)  # bad --format / --output: one error, nothing read or written
    if args.history:
        return _report_history(args, paths)
    if not args.paths:
        raise UsageError("report: give RESULTS (records files or run folders), or --history")
    recs, probs = records.collect(args.paths, latest_per_file=True)  # as `bench run --resume` shows them
    probs += report.spec_mismatches(recs)
    for p in probs:
        err_console.print(f"[yellow]warning:[/] {p}", highlight=False)
    if not recs:
        raise RecordError(f"no readable records in {', '.join(map(str, args.paths))}")
    out_console.print(report.rich_table(recs, title="bench report"))
    export.write_reports(recs, probs, paths)
    for path in paths.values():
        err_console.print(f"report: {path}", highlight=False)
    return 0


def _report_history(args: argparse.Namespace, paths: dict[str, Path]) -> int:
    from bench import history

    sources = args.paths or [history.HISTORY]
    if not args.paths and not history.HISTORY.is_dir():
        raise RecordError(f"no history in {history.HISTORY}: record runs with `bench run --history`, or pass history files")
    recs, probs = records.collect(sources)
    for p in probs:
        err_console.print(f"[yellow]warning:[/] {p}", highlight=False)
    if not recs:
        raise RecordError(f"no readable records in {', '.join(map(str, sources))}")
    points = history.trend(recs)
    header, rows = history.table_rows(points)
    table = Table(title="bench history (oldest first)", header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if i >= 7 else "left")
    for row in rows:
        table.add_row(*row)
    out_console.print(table)
    rendered = {fmt: (history.markdown(points).encode() if fmt == "md" else history.html(points).encode()
                      if fmt == "html" else export.render(fmt, recs)) for fmt in paths}
    for fmt, path in paths.items():
        export.write(path, rendered[fmt])
        err_console.print(f"report: {path}", highlight=False)
    return 0


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def cmd_list(args: argparse.Namespace) -> int:
    t = Table(title="tasks", header_style="bold")
    for col in ("task", "parameters", "epochs", "batch", "optimizer", "datasets", "description"):
        t.add_column(col)
    for name, task in TASKS.items():
        phases = getattr(task, "phases", None)
        epochs = f"{task.epochs} per phase x {len(phases)}" if phases else str(task.epochs)
        opt = (" then ".join(f"{ph.optimizer.name} lr {ph.optimizer.lr:g}" for ph in phases) if phases
               else f"{task.optimizer.name} lr {task.optimizer.lr:g}")
        t.add_row(name, f"{param_count(task):,}", epochs, str(task.batch_size), opt, ", ".join(task.datasets),
                  task.description)
    out_console.print(t)
    p = Table(title="profiles", header_style="bold")
    for col in ("profile", "task", "epochs", "train examples", "test examples", "data"):
        p.add_column(col)
    for prof in PROFILES.values():
        p.add_row(prof.name, "MNIST tasks", str(prof.epochs or "the task's"), str(prof.train_limit or "all"),
                  str(prof.test_limit or "all"), "bundled offline subset" if prof.bundled else "full dataset files")
        for name, task in TASKS.items():
            own = getattr(task, "profiles", {}).get(prof.name)
            if own is not None:
                p.add_row("", name, f"{own.epochs or task.epochs} per phase", str(own.train_limit or "all"),
                          str(own.test_limit or "all"), "photo folder (first files of each class in turn)")
    out_console.print(p)
    f = Table(title="frameworks (this interpreter)", header_style="bold")
    for col in ("framework", "installed", "versions"):
        f.add_column(col)
    from bench.adapter import FRAMEWORK_PACKAGES

    for fw in FRAMEWORKS:
        f.add_row(fw, "yes" if installed(fw) else "[red]no[/]",
                  ", ".join(f"{m} {_version(m)}" for m in FRAMEWORK_PACKAGES[fw]))
    out_console.print(f)
    gpus = envinfo.gpu_models()
    out_console.print(f"devices: cpu ({envinfo.cpu_model()}, {envinfo.available_cpus()} CPUs)"
                      + (f"; gpu: {', '.join(gpus)}" if gpus else "; gpu: none found by nvidia-smi"))
    root = data_root(None)
    out_console.print(f"data root: {root} (override with --data-root or $BENCH_DATA)")
    return 0

"""Expands the task x framework x device matrix and runs each cell in its own worker process."""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bench import envinfo, modes, records, weights
from bench.records import Record
from bench.spec import PROFILES, TASKS, resolve_epochs, spec_hash
from bench.worker import EVENT_PREFIX, Cell

EventHandler = Callable[[Cell, dict[str, Any]], None]
LOG_TAIL_LINES = 15


@dataclass
class RunConfig:
    tasks: list[str]
    frameworks: list[str]
    devices: list[str]
    profile: str = "smoke"
    dataset: str | None = None  # None: each task's default
    epochs: int | None = None
    seed: int = 0
    repeats: int = 1  # independent worker processes per cell, seeds seed..seed+repeats-1
    same_seed: bool = False  # repeats reuse `seed`: only the machine's noise varies between them
    mode: str = "default"  # default | eager | compiled (bench/modes.py); cells get the resolved one
    precision: str = "fp32"  # fp32 | bf16
    data_root: Path = field(default_factory=lambda: Path("."))
    out: Path = field(default_factory=lambda: Path("results"))
    timeout_s: float = 3600.0
    pythons: dict[str, str] = field(default_factory=dict)  # framework -> interpreter
    threads: int = field(default_factory=envinfo.available_cpus)
    run_id: str = field(default_factory=lambda: time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])


def plan(cfg: RunConfig, kind: str = "train") -> list[Cell]:
    """Cells in run order (task, device, repeat, framework); pure: writes nothing (see write_weights)."""
    cells = []
    for task_name in cfg.tasks:
        task = TASKS[task_name]
        for device in cfg.devices:
            # Repeats outermost, frameworks inside: slow drift of the machine (heat, neighbours)
            # spreads over every framework instead of landing on one.
            for repeat in range(cfg.repeats):
                seed = cfg.seed if cfg.same_seed else cfg.seed + repeat
                for fw in cfg.frameworks:
                    cells.append(Cell(
                        task=task_name, framework=fw, device=device, profile=cfg.profile,
                        dataset=cfg.dataset or task.datasets[0], seed=seed,
                        epochs=resolve_epochs(task, PROFILES[cfg.profile], cfg.epochs),
                        data_root=str(cfg.data_root.resolve()),
                        weights_path=str((cfg.out / "weights" / weights.file_name(task, seed, kind == "logits")).resolve()),
                        threads=cfg.threads, kind=kind, run_id=cfg.run_id, repeat=repeat,
                        mode=modes.resolve_mode(fw, device, cfg.mode), precision=cfg.precision,
                    ))
    return cells


def write_weights(cells: list[Cell], cfg: RunConfig) -> None:
    """Each (task, seed)'s initial weights, once, at the path its cells name (logits cells: `bench verify`'s)."""
    for task_name, seed, kind in dict.fromkeys((c.task, c.seed, c.kind) for c in cells):
        weights.materialize(TASKS[task_name], seed, cfg.out / "weights", cfg.data_root, verification=kind == "logits")


def worker_env(cell: Cell, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment, fixed before it imports any framework."""
    env = dict(os.environ if base is None else base)
    n = str(cell.threads or envinfo.available_cpus())
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(envinfo.ROOT), env.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "BENCH_THREADS": n,
        "BENCH_RUNNER_PID": str(os.getpid()),  # the worker dies with this process (bench/worker.py)
        # Same CPU thread budget for every framework (oneDNN/OpenMP, MKL, TF's pools).
        "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n,
        "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n,
        # No GPU preallocation: otherwise TF maps all GPU memory and JAX takes 75 % of it.
        "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "TF_FORCE_GPU_ALLOW_GROWTH": "true",
        "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        "KERAS_BACKEND": "tensorflow",
    })
    if cell.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # CPU cells must not touch (or allocate on) a GPU
        env["JAX_PLATFORMS"] = "cpu"
    else:
        env.pop("JAX_PLATFORMS", None)
        env.update(modes.autotune_env(env))  # one GPU autotuning policy for all three: on
    return env


def _pump(stream: Any, events: queue.Queue, log: Any) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode(errors="replace")
        if line.startswith(EVENT_PREFIX):
            try:
                events.put(json.loads(line[len(EVENT_PREFIX):]))
                continue
            except json.JSONDecodeError:
                pass
        log.write(raw)
        log.flush()


def _log_tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-LOG_TAIL_LINES:])


def run_cell(cell: Cell, cfg: RunConfig, on_event: EventHandler | None = None) -> tuple[Record, dict[str, Any]]:
    """Run one cell to completion; always returns a record (and the worker's raw result)."""
    label = cell.label().replace("/", "_")
    for sub in ("cells", "logs"):
        (cfg.out / sub).mkdir(parents=True, exist_ok=True)
    cell_path, result_path = cfg.out / "cells" / f"{label}.json", cfg.out / "cells" / f"{label}.result.json"
    log_path = cfg.out / "logs" / f"{label}.log"
    result_path.unlink(missing_ok=True)
    cell_path.write_text(json.dumps(dataclasses.asdict(cell), indent=1))
    python = cfg.pythons.get(cell.framework, sys.executable)
    base = {"task": cell.task, "framework": cell.framework, "device": cell.device, "profile": cell.profile,
            "dataset": cell.dataset, "seed": cell.seed, "repeat": cell.repeat, "epochs": cell.epochs, "run_id": cell.run_id,
            "mode": cell.mode, "precision": cell.precision,
            "spec_hash": spec_hash(TASKS[cell.task]), "threads": cell.threads,
            "env": {**envinfo.machine(), "python_executable": python}}
    start = time.monotonic()
    error, rss, interrupted = None, None, False
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen([python, "-m", "bench.worker", str(cell_path), str(result_path)],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                    env=worker_env(cell), start_new_session=True)
        except OSError as exc:
            proc, error = None, f"cannot start interpreter {python!r}: {exc.strerror or exc}"
        if proc is not None:
            events: queue.Queue = queue.Queue()
            reader = threading.Thread(target=_pump, args=(proc.stdout, events, log), daemon=True)
            reader.start()
            status, setup_peak = 0, None
            try:
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    while not events.empty():
                        ev = events.get()
                        setup_peak = _setup_peak(ev, setup_peak)
                        if on_event:
                            on_event(cell, ev)
                    if pid:
                        break
                    if time.monotonic() - start > cfg.timeout_s:
                        os.killpg(proc.pid, signal.SIGKILL)
                        _, status, usage = os.wait4(proc.pid, 0)
                        error = f"timed out after {cfg.timeout_s:g} s"
                        break
                    time.sleep(0.05)
            except KeyboardInterrupt:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                error, interrupted = "interrupted by the user (Ctrl-C)", True
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
            reader.join(timeout=5)
            while not events.empty():
                setup_peak = _setup_peak(events.get(), setup_peak)
            rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
            # The worker reset its peak-RSS counter after setup (to measure training alone), which
            # also lowers the ru_maxrss wait4 reports: the whole-process peak is the larger of the two.
            rss = max(rss, setup_peak or 0)
            if error is None and proc.returncode < 0:
                error = f"worker killed by signal {signal.Signals(-proc.returncode).name}"
                if proc.returncode == -signal.SIGKILL:  # not ours (timeouts are handled above)
                    error += (f" (the kernel's OOM killer sends SIGKILL when memory runs out; the worker's "
                              f"peak RSS was {rss / 2**20:,.0f} MiB)")
            elif error is None and proc.returncode != 0:
                error = f"worker exited with code {proc.returncode}"
    wall = time.monotonic() - start
    body: dict[str, Any] = {}
    if error is None and result_path.exists():
        try:
            body = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            error = f"unreadable worker result ({exc})"
    elif error is None:
        error = "worker wrote no result"
    if error is not None:
        tail = _log_tail(log_path)
        missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", tail)
        if missing and not result_path.exists():  # died importing bench's own dependencies
            error = (f"the interpreter {python} lacks {missing.group(1)}, which bench's worker needs: "
                     f"run `{python} -m pip install -e {envinfo.ROOT}` ({error})")
        if re.search(r"std::bad_alloc|MemoryError|Cannot allocate memory|out of memory", tail):
            # A C++ allocation failure aborts (SIGABRT) before Python can report it: name the cause.
            error += " (out of memory: an allocation failed; the worker hit its memory or address-space limit)"
        body = {"status": "failed", "error": error + (f"; log tail:\n{tail}" if tail else "")}
    fields = {k: v for k, v in body.items() if k in records.FIELDS and k not in base}
    if rss is not None:  # the worker's own VmHWM reads can top wait4's by a few pages (approximate per-CPU counters)
        rss = max([rss, *(v for k in ("setup_peak_rss_bytes", "train_peak_rss_bytes") if isinstance(v := body.get(k), int))])
    rec = Record(**base, **fields, peak_host_rss_bytes=rss, wall_time_s=wall)
    if interrupted:
        raise Interrupted(rec)
    return rec, body


def _setup_peak(ev: dict[str, Any], seen: int | None) -> int | None:
    """The peak RSS a worker had before it reset the counter (its "rss_reset" event), if this is that event."""
    value = ev.get("setup_peak_rss_bytes") if ev.get("event") == "rss_reset" else None
    return value if isinstance(value, int) and not isinstance(value, bool) else seen


class Interrupted(Exception):
    """Ctrl-C during a cell; carries that cell's (failed) record so it is not lost."""

    def __init__(self, record: Record) -> None:
        super().__init__("interrupted")
        self.record = record


def run(cfg: RunConfig, on_event: EventHandler | None = None,
        on_record: Callable[[Record], None] | None = None,
        skip: set[tuple] | frozenset[tuple] = frozenset()) -> tuple[list[Record], bool]:
    """Run every cell not in `skip` (records.cell_key), appending each record to out/records.jsonl
    as soon as it exists. Returns the new records and whether the user interrupted the run.
    """
    cfg.out.mkdir(parents=True, exist_ok=True)
    done: list[Record] = []
    cells = [c for c in plan(cfg) if records.cell_key(c) not in skip]
    write_weights(cells, cfg)
    for cell in cells:
        try:
            rec, _ = run_cell(cell, cfg, on_event)
        except Interrupted as stop:
            records.append(cfg.out / records.RECORDS_FILE, [stop.record])
            done.append(stop.record)
            return done, True
        records.append(cfg.out / records.RECORDS_FILE, [rec])
        done.append(rec)
        if on_record:
            on_record(rec)
    return done, False

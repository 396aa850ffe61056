"""One cell in its own worker process: start it, stream its progress, enforce the timeout, read its peak
memory from wait4, and turn whatever happened into a record."""
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import machine
from bench.files import write_atomic
from bench.harness.caches import cell_folder
from bench.harness.cell import Cell
from bench.harness.worker import EVENT_PREFIX
from bench.records import FIELDS, Record
from bench.runner.config import RunConfig
from bench.runner.isolation import worker_argv, worker_env
from bench.spec import TASKS, optimizer_axis, spec_hash

EventHandler = Callable[[Cell, dict[str, Any]], None]
LOG_TAIL_LINES = 15


class Interrupted(Exception):
    """Ctrl-C during a cell; carries that cell's (failed) record so it is not lost."""

    def __init__(self, record: Record) -> None:
        super().__init__("interrupted")
        self.record = record


@dataclass
class Outcome:
    """How the worker process ended, before its result file is read."""

    error: str | None = None
    rss: int | None = None  # peak RSS in bytes, from wait4 and the worker's own report
    interrupted: bool = False
    timed_out: bool = False


def run_cell(cell: Cell, cfg: RunConfig, on_event: EventHandler | None = None) -> tuple[Record, dict[str, Any]]:
    """Run one cell to completion; always returns a record (and the worker's raw result)."""
    label = cell.label().replace("/", "_")
    for sub in ("cells", "logs"):
        (cfg.out / sub).mkdir(parents=True, exist_ok=True)
    cell_path, result_path = cfg.out / "cells" / f"{label}.json", cfg.out / "cells" / f"{label}.result.json"
    log_path = cfg.out / "logs" / f"{label}.log"
    result_path.unlink(missing_ok=True)
    write_atomic(cell_path, json.dumps(dataclasses.asdict(cell), indent=1))
    python = cfg.pythons.get(cell.framework, sys.executable)
    base = base_fields(cell, python)
    start = time.monotonic()
    with open(log_path, "wb") as log, cell_folder(cfg.warm_caches) as caches:  # removed when the cell ends
        env = worker_env(cell, caches=caches, gpus=cfg.gpu_indices())
        outcome = _run_worker(worker_argv(cell, python, str(cell_path), str(result_path)), env, cell, cfg, log,
                              on_event)
    wall = time.monotonic() - start
    body = _result(result_path, log_path, outcome, python)
    rss = outcome.rss
    if rss is not None:  # the worker's own VmHWM reads can top wait4's by a few pages (approximate per-CPU counters)
        own = (body.get(k) for k in ("setup_peak_rss_bytes", "train_peak_rss_bytes"))
        rss = max([rss, *(v for v in own if isinstance(v, int))])
    fields = {k: v for k, v in body.items() if k in FIELDS and k not in base}
    rec = Record(**base, **fields, peak_host_rss_bytes=rss, wall_time_s=wall)
    if outcome.interrupted:
        raise Interrupted(rec)
    return rec, body


def base_fields(cell: Cell, python: str) -> dict[str, Any]:
    """What every record of this cell says, whatever happened to it: the cell, its spec, this machine."""
    return {
        "task": cell.task, "framework": cell.framework, "device": cell.device, "profile": cell.profile,
        "dataset": cell.dataset, "seed": cell.seed, "repeat": cell.repeat, "epochs": cell.epochs,
        "train_size": cell.train_size, "run_id": cell.run_id, "mode": cell.mode, "precision": cell.precision,
        "optimizer": cell.optimizer, "spec_hash": spec_hash(optimizer_axis.apply(TASKS[cell.task], cell.optimizer)),
        "threads": cell.threads, "devices": cell.devices,
        "per_device_batch": TASKS[cell.task].batch_size // cell.devices if cell.optimizer else None,
        # the job id ties a record to the scheduler's logs and accounting (None outside a SLURM job)
        "env": {**machine.describe(), "python_executable": python, "slurm_job": os.environ.get("SLURM_JOB_ID")}}


def failed_record(cell: Cell, cfg: RunConfig, error: str) -> Record:
    """A failed record for a cell whose worker never ran or never reported (e.g. its SLURM job did not)."""
    return Record(**base_fields(cell, cfg.pythons.get(cell.framework, sys.executable)), status="failed", error=error)


def _run_worker(argv: list[str], env: dict[str, str], cell: Cell, cfg: RunConfig, log: Any,
                on_event: EventHandler | None) -> Outcome:
    """Start the worker, pass its events on, kill it at the timeout or on Ctrl-C; reap it with wait4."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=log,
                                env=env, start_new_session=True)
    except OSError as exc:
        return Outcome(error=f"cannot start interpreter {argv[0]!r}: {exc.strerror or exc}")
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    reader = threading.Thread(target=_pump, args=(proc.stdout, events, log), daemon=True)
    reader.start()
    outcome, setup_peak, start = Outcome(), None, time.monotonic()

    def drain(notify: bool) -> None:
        nonlocal setup_peak
        while not events.empty():
            ev = events.get()
            setup_peak = _setup_peak(ev, setup_peak)
            if notify and on_event:
                on_event(cell, ev)

    try:
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            drain(notify=True)
            if pid:
                break
            if time.monotonic() - start > cfg.timeout_s:
                os.killpg(proc.pid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                outcome.error, outcome.timed_out = f"timed out after {cfg.timeout_s:g} s", True
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        _, status, usage = os.wait4(proc.pid, 0)
        outcome.error, outcome.interrupted = "interrupted by the user (Ctrl-C)", True
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    reader.join(timeout=5)
    drain(notify=False)
    rss = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    # The worker reset its peak-RSS counter after setup (to measure training alone), which also lowers
    # the ru_maxrss wait4 reports: the whole-process peak is the larger of the two.
    outcome.rss = max(rss, setup_peak or 0)
    if outcome.error is None:
        outcome.error = _exit_error(proc.returncode, outcome.rss)
    return outcome


def _exit_error(code: int, rss: int) -> str | None:
    if code < 0:
        error = f"worker killed by signal {signal.Signals(-code).name}"
        if code == -signal.SIGKILL:  # not ours (timeouts are handled above)
            error += (f" (the kernel's OOM killer sends SIGKILL when memory runs out; the worker's "
                      f"peak RSS was {rss / 2**20:,.0f} MiB)")
        return error
    return f"worker exited with code {code}" if code != 0 else None


def _result(result_path: Path, log_path: Path, outcome: Outcome, python: str) -> dict[str, Any]:
    """The worker's result; or, when there is none, a failure naming the cause the log shows."""
    error, body = outcome.error, None
    failed_rank = _failed_rank(log_path) if error else None  # torchrun exits 0 when no rank failed
    # A failed torchrun cell exits non-zero after rank 0 wrote its result: read it (unless killed by us).
    if (error is None or (failed_rank and not outcome.timed_out)) and result_path.exists():
        try:
            body = json.loads(result_path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            error = f"unreadable worker result ({exc})"
    if isinstance(body, dict):
        if failed_rank and body.get("status") == "failed":  # rank 0's own error is often the consequence
            body["error"] = f"{failed_rank}; rank 0 saw: {body.get('error')}"
        return body
    error = f"{failed_rank} ({error or 'no result'})" if failed_rank else error or "worker wrote no result"
    tail = _log_tail(log_path)
    missing = re.search(r"ModuleNotFoundError: No module named '([\w.]+)'", tail)
    if missing and not result_path.exists():  # died importing bench's own dependencies
        error = (f"the interpreter {python} lacks {missing.group(1)}, which bench's worker needs: "
                 f"run `{python} -m pip install -e {machine.ROOT}` ({error})")
    if re.search(r"std::bad_alloc|MemoryError|Cannot allocate memory|out of memory", tail):
        # A C++ allocation failure aborts (SIGABRT) before Python can report it: name the cause.
        error += " (out of memory: an allocation failed; the worker hit its memory or address-space limit)"
    return {"status": "failed", "error": error + (f"; log tail:\n{tail}" if tail else "")}


def _failed_rank(log_path: Path) -> str | None:
    """torchrun's own account of the first rank that failed ("Root Cause" in its summary), in one line."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    head, _, cause = text.rpartition("Root Cause (first observed failure):")
    found = head and re.search(r"rank\s*:\s*(\d+).*?exitcode\s*:\s*(-?\d+).*?traceback\s*:\s*(.*?)\n", cause, re.S)
    if not found:
        return None
    rank, code, why = found.group(1), int(found.group(2)), found.group(3).strip()
    if code < 0:
        why = f"killed by signal {signal.Signals(-code).name}"
    elif why.startswith("To enable traceback"):  # torchrun's placeholder: the rank's error is in the log
        why = f"exited with code {code}"
    return f"rank {rank} failed first: {why}"


def _pump(stream: Any, events: queue.Queue[dict[str, Any]], log: Any) -> None:
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


def _setup_peak(ev: dict[str, Any], seen: int | None) -> int | None:
    """The peak RSS a worker had before it reset the counter (its "rss_reset" event), if this is that event."""
    value = ev.get("setup_peak_rss_bytes") if ev.get("event") == "rss_reset" else None
    return value if isinstance(value, int) and not isinstance(value, bool) else seen

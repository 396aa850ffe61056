"""--executor slurm: each cell a SLURM job, submitted with submitit, that runs on its node exactly what a local
cell runs (run_cell: the same worker, isolation, timeout and record). This side submits every job, follows
the scheduler (squeue, else sacct), passes each job's progress on and turns every job's end, whatever it was,
into a record. The run folder must be on storage both sides see (docs/cluster.md)."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import submitit

from bench.harness.cell import Cell
from bench.records import Record
from bench.runner.config import RunConfig
from bench.runner.execute import EventHandler, Interrupted, failed_record, run_cell
from bench.runner.slurm_options import SLURM_DIR, executor

MARKER = "shared-storage-check"
POLL_S = 2.0
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL",
            "DEADLINE", "SPECIAL_EXIT", "REVOKED"}
# Pending reasons that say the request cannot run as the cluster is configured: it would wait forever.
HOPELESS = {"BadConstraints", "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "InvalidAccount",
            "InvalidQOS", "QOSMaxCpuPerJobLimit", "QOSMaxGRESPerJob", "QOSMaxWallDurationPerJobLimit"}
HOPELESS_AFTER_S = 20.0
RESULT_WAIT_S = 30.0  # a slow shared file system may show a result after the scheduler shows the job's end
FORGOTTEN_AFTER_S = 300.0  # neither squeue nor sacct knows the job (a controller restart takes a while)
EXPLAIN = {"CANCELLED": "cancelled (scancel, or an administrator)", "TIMEOUT": "killed at its SLURM time limit",
           "NODE_FAIL": "its node failed", "PREEMPTED": "preempted by another job", "FAILED": "its batch script failed",
           "OUT_OF_MEMORY": "killed for using more memory than it asked for", "BOOT_FAIL": "its node failed to boot"}
Keep = Callable[[Record], None]


class Status(NamedTuple):
    """What the scheduler says about one job; state "" when neither squeue nor sacct knows it."""
    state: str
    reason: str = ""
    node: str = ""


@dataclass
class Flight:
    """One cell's job, from submission to its record."""

    cell: Cell
    job: submitit.Job[Record]
    events: Path  # the job's progress events, written on the node
    status: Status = Status("PENDING")
    since: float = field(default_factory=time.monotonic)  # when `status` last changed
    events_at: int = 0  # bytes of the events file already passed on
    result_at: float | None = None  # when a failed result showed while the job was still ending
    record: Record | None = None


def on_node(cell: Cell, cfg: RunConfig, marker: str, token: str, events: str) -> Record:
    """The job: check that this node sees the submitting side's run folder, then run the cell as a local run does."""
    try:
        seen = Path(marker).read_text().strip()
    except OSError:
        seen = None
    if seen != token:
        return failed_record(cell, cfg, f"node {socket.gethostname()} cannot read {marker}, which the submitting "
                                        "side wrote: put --out on storage both see (docs/cluster.md)")
    with open(events, "a") as stream:
        def on_event(_: Cell, ev: dict[str, Any]) -> None:
            stream.write(json.dumps(ev) + "\n")
            stream.flush()

        try:
            return run_cell(cell, cfg, on_event)[0]
        except Interrupted as stop:  # no Ctrl-C reaches a job; kept so that a record always comes back
            return stop.record


def run_jobs(cells: list[Cell], cfg: RunConfig, on_event: EventHandler | None, keep: Keep) -> tuple[list[Record], bool]:
    """Submit every cell, then pass each record to `keep` as its job ends. After a Ctrl-C: the records of the
    cells left unfinished (their jobs cancelled) and True; else ([], False)."""
    cfg = dataclasses.replace(cfg, out=cfg.out.resolve())  # the job's working directory may differ
    folder = cfg.out / SLURM_DIR / cfg.run_id
    ex = executor(cfg, folder)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    (folder / MARKER).write_text(token + "\n")
    notify = on_event or (lambda cell, ev: None)
    flights: list[Flight] = []
    try:
        for cell in cells:
            flight = _submit(ex, cell, cfg, folder, token)
            if isinstance(flight, Flight):
                notify(cell, {"event": "queued", "job_id": flight.job.job_id})
                flights.append(flight)
            else:
                keep(failed_record(cell, cfg, flight))
        _follow(flights, cfg, notify, keep)
    except KeyboardInterrupt:
        return _cancel(flights, cfg), True
    return [], False


def _submit(ex: submitit.SlurmExecutor, cell: Cell, cfg: RunConfig, folder: Path, token: str) -> Flight | str:
    """One cell's job, or sbatch's reason for refusing it."""
    events = folder / (cell.label().replace("/", "_") + ".events.jsonl")
    events.write_text("")
    gres = dict(cfg.slurm_options).get("gres") or (f"gpu:{cell.devices}" if cell.device == "gpu" else None)
    ex.update_parameters(job_name=cell.label(), gres=gres)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's error: the record carries it
            return Flight(cell, ex.submit(on_node, cell, cfg, str(folder / MARKER), token, str(events)), events)
    except (submitit.core.utils.FailedJobError, OSError) as exc:
        lines = [ln for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
        said = [ln.split("error: ", 1)[-1] for ln in lines if "error" in ln.lower()] or lines[-1:]
        return f"sbatch refused the job: {'; '.join(dict.fromkeys(said))}"


def _follow(flights: list[Flight], cfg: RunConfig, notify: EventHandler, keep: Keep) -> None:
    """Poll the scheduler and the results until every job has its record."""
    active = list(flights)
    while active:
        now = states([f.job.job_id for f in active])
        for f in list(active):
            _pass_events(f, notify)
            f.record = _settle(f, now.get(f.job.job_id, Status("")), cfg, notify)
            if f.record is not None:
                active.remove(f)
                keep(f.record)
        if active:
            time.sleep(POLL_S)


def states(ids: list[str]) -> dict[str, Status]:
    """Each job's state: squeue knows what slurmctld holds (ended jobs for MinJobAge), sacct the rest where the
    cluster keeps accounting. (submitit's own watcher reads sacct alone: without accounting, no job ever ends.)"""
    found = {}
    for line in _query("squeue", "-h", "--states=all", "-j", ",".join(ids), "-o", "%i|%T|%r|%N"):
        i, state, reason, node = (line.split("|") + ["", "", ""])[:4]
        found[i] = Status(state, "" if reason == "None" else reason, node)
    missing = ",".join(i for i in ids if i not in found)
    for line in _query("sacct", "-X", "-n", "-P", "-j", missing, "-o", "JobID,State,NodeList") if missing else []:
        i, state, node = (line.split("|") + ["", ""])[:3]
        found.setdefault(i, Status(state.split(" ")[0], "", node))  # "CANCELLED by 0": the state
    return found


def _query(*argv: str) -> list[str]:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return out.stdout.splitlines() if out.returncode == 0 else []  # a lone unknown id: squeue exits 1


def _pass_events(f: Flight, notify: EventHandler) -> None:
    """The job's new progress events (whole lines only), to the display."""
    try:
        with open(f.events, "rb") as stream:
            stream.seek(f.events_at)
            data = stream.read()
    except OSError:
        return
    end = data.rfind(b"\n") + 1
    f.events_at += end
    for line in data[:end].splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            ev = json.loads(line)
            if isinstance(ev, dict):
                notify(f.cell, ev)


def _settle(f: Flight, status: Status, cfg: RunConfig, notify: EventHandler) -> Record | None:
    """The cell's record once its job has ended (or can never start); None while it has not."""
    if status[:2] != f.status[:2]:
        event = {"PENDING": "queued", "RUNNING": "running"}.get(status.state)
        if event:
            notify(f.cell, {"event": event, "job_id": f.job.job_id, "reason": status.reason, "node": status.node})
        f.status, f.since = status, time.monotonic()
    waited = time.monotonic() - f.since
    if f.job.paths.result_pickle.exists():
        return _result(f, cfg)
    if status.state in TERMINAL:  # no result yet: a slow shared file system, or the job died without one
        return _no_result(f, cfg) if waited > RESULT_WAIT_S else None
    if status.state == "PENDING" and status.reason in HOPELESS and waited > HOPELESS_AFTER_S:
        _query("scancel", f.job.job_id)
        return failed_record(f.cell, cfg, f"SLURM job {f.job.job_id} can never start: it waits with reason "
                                          f"{status.reason}, {_hopeless_hint(status.reason, cfg)}; cancelled")
    if not status.state and waited > FORGOTTEN_AFTER_S:
        return failed_record(f.cell, cfg, f"SLURM job {f.job.job_id} is unknown to squeue and sacct "
                                          f"and left no result in {f.job.paths.folder}")
    return None


def _hopeless_hint(reason: str, cfg: RunConfig) -> str:
    if reason in ("PartitionTimeLimit", "QOSMaxWallDurationPerJobLimit"):
        return ("its time limit is above what its partition or QOS allows: lower --timeout (the job asks "
                "ceil(--timeout / 60) + 5 minutes) or pass --slurm-opt time=MINUTES")
    if reason in ("PartitionNodeLimit", "QOSMaxCpuPerJobLimit", "BadConstraints"):
        return f"asking more than its partition allows (a node has fewer CPUs than --threads {cfg.threads}?)"
    return "asking what its partition, account or QOS does not allow"


def _result(f: Flight, cfg: RunConfig) -> Record | None:
    """The job's returned record; a failed one carries the scheduler's state too, once the job has ended."""
    try:
        rec = f.job.result()
    except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError, EOFError) as exc:
        rec = failed_record(f.cell, cfg, f"SLURM job {f.job.job_id} raised: {_last_line(str(exc))}")
    if rec.status != "failed":
        return rec
    f.result_at = f.result_at or time.monotonic()
    if f.status.state not in TERMINAL and f.status.state and time.monotonic() - f.result_at < RESULT_WAIT_S:
        return None  # still ending (COMPLETING): its final state may explain the failure
    if f.status.state in TERMINAL and f.status.state != "COMPLETED":
        rec = dataclasses.replace(rec, error=f"{_scheduler_says(f)}; the cell: {rec.error}")
    return rec


def _scheduler_says(f: Flight) -> str:
    state, reason, node = f.status
    where = (f" ({reason})" if reason else "") + (f" on {node}" if node else "")
    return f"SLURM job {f.job.job_id} {state}{where}: {EXPLAIN.get(state, 'ended')}"


def _no_result(f: Flight, cfg: RunConfig) -> Record:
    """A job that ended without returning a record: the scheduler's word, the likely cause, its log's end."""
    error = f"{_scheduler_says(f)}, without a result"
    if f.status.state in ("COMPLETED", "FAILED"):  # most often: the node cannot read or write the run folder
        error += f"; if its node cannot see {cfg.out}, put --out on storage both sides see (docs/cluster.md)"
    with contextlib.suppress(OSError):
        tail = f.job.paths.stderr.read_text(errors="replace").strip().splitlines()[-5:]
        error += f"; {f.job.paths.stderr} ends:\n" + "\n".join(tail) if tail else ""
    return failed_record(f.cell, cfg, error)


def _last_line(text: str) -> str:
    """The exception line of a job's traceback (submitit wraps it in text of its own)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith(("-", " "))]
    found = [ln for ln in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", ln)]
    return (found or lines or ["no message"])[-1]


def _cancel(flights: list[Flight], cfg: RunConfig) -> list[Record]:
    """Ctrl-C: cancel every unfinished job of the run; their cells' records (failed "interrupted")."""
    live = [f for f in flights if f.record is None]
    if live:
        ids = [f.job.job_id for f in live]
        print(f"Ctrl-C: cancelling this run's {len(ids)} unfinished SLURM jobs ({', '.join(ids)})",
              file=sys.stderr, flush=True)
        _query("scancel", *ids)
    out = []
    for f in live:
        done = _result(f, cfg) if f.job.paths.result_pickle.exists() else None
        out.append(done if done is not None and done.status != "failed" else failed_record(
            f.cell, cfg, f"interrupted by the user (Ctrl-C); its SLURM job {f.job.job_id} was cancelled"))
    return out

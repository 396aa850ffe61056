"""Versioned result records: one JSON object per cell, appended atomically to JSONL files."""
from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from bench.errors import RecordError
from bench.modes import resolve_mode

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"
STATUSES = ("ok", "failed", "skipped")


@dataclass
class Record:
    """Everything measured for one (task, framework, device, seed) cell; times in seconds."""

    task: str
    framework: str
    device: str
    profile: str
    dataset: str
    seed: int
    status: str  # ok | failed | skipped
    spec_hash: str
    run_id: str = ""
    repeat: int = 0  # index among --repeats N: with --same-seed, what tells repeats apart
    # What ran (bench/modes.py): None in a record made before --mode means the framework's default then.
    mode: str | None = None  # eager | compiled
    precision: str = "fp32"  # fp32 (TF32 off on GPU) | bf16 (mixed: fp32 weights, logits and loss)
    schema_version: int = SCHEMA_VERSION
    error: str | None = None
    traceback: str | None = None
    epochs: int | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    train_time_s: float | None = None  # all training steps, summed over epochs; no evaluation
    epoch_times_s: list[float] = field(default_factory=list)
    first_epoch_s: float | None = None  # includes compilation / warm-up
    steady_epoch_s: float | None = None  # median of epochs 2..n
    samples_per_s: float | None = None  # training samples per steady second
    # Step timing (bench/timing.py, K and M from the task's `measurement`); transfer: phase 1 here, each in `phases`.
    first_step_s: float | None = None  # compile + first step, synced after it
    steady_step_s: float | None = None  # median window time / M (windows of M steps after K warm-up steps)
    steady_step_iqr_s: float | None = None  # IQR of the windows' per-step times; None with < 2 windows
    steady_step_cv: float | None = None  # their coefficient of variation (sd / mean); None with < 2 windows
    step_windows: int | None = None  # full windows timed; 0: too few steps after warm-up (steady fields None)
    # Time-to-accuracy (MLPerf rule): None time and epoch = target not reached in this run.
    tta_target: float | None = None
    time_to_accuracy_s: float | None = None  # from before the first batch to the first eval >= target
    tta_reached_epoch: int | None = None
    # Efficiency (bench/efficiency.py): analytic train FLOPs per sample x samples_per_s, against the
    # measured fp32 matmul peak (and on GPU the datasheet's); transfer cells also per phase in `phases`.
    flops_per_sample: int | None = None
    achieved_flops: float | None = None
    peak_flops: float | None = None
    peak_source: str | None = None  # "measured matmul fp32 n=2048" or "nominal H100 SXM fp32"
    mfu: float | None = None  # achieved_flops / peak_flops (the peak of the cell's precision)
    nominal_peak_flops: float | None = None  # GPU datasheet peak of the cell's precision, dense
    mfu_nominal: float | None = None
    peaks: dict[str, Any] = field(default_factory=dict)  # per matmul dtype: FLOP/s, size, fingerprint; nominal
    eval_time_s: float | None = None  # the final test-set evaluation
    history: list[dict[str, Any]] = field(default_factory=list)  # per epoch: loss, val metrics, times
    phases: list[dict[str, Any]] = field(default_factory=list)  # transfer tasks: per phase times and accuracy
    eval_split: str | None = None  # which split test_accuracy is measured on ("test", or "val" for photos)
    data_skipped: list[str] = field(default_factory=list)  # unreadable input files, each "path: reason"
    peak_host_rss_bytes: int | None = None  # of the worker process, from wait4
    setup_rss_bytes: int | None = None  # after imports, data and model build, before training
    setup_peak_rss_bytes: int | None = None  # VmHWM before the reset below (peak of imports, data, build)
    train_peak_rss_bytes: int | None = None  # VmHWM after training, the counter reset after setup
    train_added_rss_bytes: int | None = None  # train_peak_rss_bytes minus the RSS at the reset
    train_rss_note: str | None = None  # why the two above are None (no /proc/self/clear_refs)
    peak_device_bytes: int | None = None  # the framework's own peak counter; None on CPU
    param_count: int | None = None
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    data_source: str | None = None
    data_fingerprint: str | None = None
    weights_digest: str | None = None
    import_time_s: float | None = None
    setup_time_s: float | None = None
    wall_time_s: float | None = None  # the whole worker process, start to exit
    threads: int | None = None
    settings: dict[str, str] = field(default_factory=dict)  # the adapter's own words: mode, precision, autotune
    device_name: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    env: dict[str, Any] = field(default_factory=dict)
    started_at: str | None = None
    finished_at: str | None = None

    def __post_init__(self) -> None:
        if self.mode is None:  # records from before --mode: they ran the framework's default
            self.mode = resolve_mode(self.framework, self.device, "default")

    def key(self) -> tuple[str, str, str]:
        return (self.task, self.framework, self.device)


FIELDS = {f.name for f in dataclasses.fields(Record)}
REQUIRED = {f.name for f in dataclasses.fields(Record) if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING}


def to_json(rec: Record) -> str:
    return json.dumps(dataclasses.asdict(rec), sort_keys=True, allow_nan=False, default=str)


def from_dict(d: dict[str, Any], where: str = "record") -> Record:
    if not isinstance(d, dict):
        raise RecordError(f"{where}: not a JSON object")
    version = d.get("schema_version")
    if version != SCHEMA_VERSION:
        raise RecordError(f"{where}: schema version {version!r}, this bench reads {SCHEMA_VERSION}")
    missing = REQUIRED - d.keys()
    if missing:
        raise RecordError(f"{where}: missing {', '.join(sorted(missing))}")
    if d["status"] not in STATUSES:
        raise RecordError(f"{where}: status {d['status']!r} is not one of {', '.join(STATUSES)}")
    for name, value in d.items():
        if name in TYPES and not _fits(value, TYPES[name]):
            raise RecordError(f"{where}: {name} is {json.dumps(value)[:40]}, not {TYPES[name]}")
    return Record(**{k: v for k, v in d.items() if k in FIELDS})


TYPES = {f.name: str(f.type) for f in dataclasses.fields(Record)}  # annotations are strings here


def _fits(value: Any, annotation: str) -> bool:
    """Whether a JSON value matches a Record field's annotation (records come from files: check them)."""
    base = annotation.removesuffix(" | None")
    if value is None:
        return base != annotation
    if base == "str":
        return isinstance(value, str)
    if base in ("int", "float"):
        number = (int,) if base == "int" else (int, float)
        return isinstance(value, number) and not isinstance(value, bool)
    if base.startswith("list["):
        return isinstance(value, list) and all(_fits(v, base[5:-1]) for v in value)
    if base.startswith("dict["):
        return isinstance(value, dict) and (base != "dict[str, str]" or all(isinstance(v, str) for v in value.values()))
    return True  # Any


def append(path: Path, records: Iterable[Record]) -> None:
    """Append whole lines under an exclusive lock, one write each, then fsync.

    O_APPEND plus the lock keeps two bench processes on one file from interleaving; a crash
    can leave at most a final partial line, which readers skip and report.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        # A previous writer killed mid-line must not glue its fragment onto our record.
        size = os.fstat(fd).st_size
        needs_newline = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        for rec in records:
            data = ("\n" if needs_newline else "") + to_json(rec) + "\n"
            needs_newline = False
            os.write(fd, data.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def read_file(path: Path) -> tuple[list[Record], list[str]]:
    """Records of one JSONL file, and one warning per damaged or foreign line (never raises on content)."""
    records: list[Record] = []
    problems: list[str] = []
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise RecordError(f"{path}: cannot read ({exc.strerror})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{n}"
        try:
            records.append(from_dict(json.loads(line), where))
        except json.JSONDecodeError:
            problems.append(f"{where}: not valid JSON (damaged line), skipped")
        except (RecordError, TypeError) as exc:
            problems.append(f"{exc}, skipped")
    return records, problems


def collect(paths: Iterable[Path], latest_per_file: bool = False) -> tuple[list[Record], list[str]]:
    """Records from files and folders (every records.jsonl below a folder).

    latest_per_file: within each file keep only the latest record of a cell (a resumed run's retried
    cell replaces its failure); records of the same cell in different files all stay.
    """
    records: list[Record] = []
    problems: list[str] = []
    for p in paths:
        if p.is_dir():
            files = sorted(p.rglob("*.jsonl"))
            if not files:
                raise RecordError(f"{p}: no .jsonl record files in this folder; pass a run folder or a records file")
        elif p.exists():
            files = [p]
        else:
            raise RecordError(f"{p}: no such file or folder")
        for f in files:
            recs, probs = read_file(f)
            records += latest(recs) if latest_per_file else recs
            problems += probs
    return records, problems


CELL_KEY = ("task", "framework", "device", "mode", "precision", "profile", "dataset", "seed", "repeat", "epochs")


def cell_key(item: Any) -> tuple:
    """What makes two runs the same cell (a Record or a worker Cell)."""
    return tuple(getattr(item, k) for k in CELL_KEY)


def latest(records: list[Record]) -> list[Record]:
    """The last record of each cell, in first-seen order: a resumed cell replaces its failure."""
    last: dict[tuple, Record] = {}
    for rec in records:
        last[cell_key(rec)] = rec  # a dict keeps the key's first position and takes the new value
    return list(last.values())


def frame(records: list[Record]) -> Any:
    """A pandas DataFrame, one row per record (pandas is imported only here)."""
    import pandas as pd

    return pd.DataFrame([dataclasses.asdict(r) for r in records])

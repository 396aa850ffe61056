"""The record schema: one JSON object per cell, versioned; what makes two records the same cell."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from bench.errors import RecordError
from bench.spec import FRAMEWORKS, TASKS, optimizer_axis
from bench.spec.modes import resolve_mode

SCHEMA_VERSION = 1
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
    # What ran (bench/spec/modes.py): None in a record made before --mode means the framework's default then.
    mode: str | None = None  # eager | compiled
    precision: str = "fp32"  # fp32 (TF32 off on GPU) | bf16 (mixed: fp32 weights, logits and loss)
    side: str | None = None  # "A" or "B" in a `bench ab` run (its ab.json says what each side was); else None
    train_size: int | None = None  # a size sweep's class-balanced subset of the training split; None: all of it
    train_passes: int | None = None  # shuffled copies of that subset per epoch (equal steps for every size)
    # bench/spec/optimizer_axis.py; None in a record made before --optimizer: the task's own then. None: baselines.
    optimizer: str | None = None
    # Data-parallel training (docs/distributed.md): devices of kind `device`, each taking batch/devices of
    # every global batch; the launcher in the framework's own words. Records from before: 1 device.
    devices: int = 1
    per_device_batch: int | None = None
    launcher: str | None = None
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
    # Step timing (bench/harness/timing.py, K and M from the task's `measurement`): the first phase's here,
    # each phase's in `phases`. The steady fields come from the step probe after training (bench/harness/probe.py).
    first_step_s: float | None = None  # compile + first step, seen complete by a watcher thread (no sync)
    steady_step_s: float | None = None  # median window time / M (windows of M steps after K warm-up steps)
    steady_step_iqr_s: float | None = None  # IQR of the windows' per-step times; None with < 2 windows
    steady_step_cv: float | None = None  # their coefficient of variation (sd / mean); None with < 2 windows
    step_windows: int | None = None  # full windows timed; 0: too few steps after warm-up (steady fields None)
    # Time-to-accuracy (MLPerf rule): None time and epoch = target not reached in this run.
    tta_target: float | None = None
    time_to_accuracy_s: float | None = None  # before the first batch to the first eval >= target, compiles included
    # less each begun phase's compile (first step minus a steady step): MLPerf's clock, compile before it
    time_to_accuracy_excl_compile_s: float | None = None
    tta_reached_epoch: int | None = None
    # Efficiency (bench/harness/efficiency.py): analytic train FLOPs per sample x samples_per_s, against the
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
    peak_device_bytes: int | None = None  # = train_peak_device_bytes (the column reports show); None on CPU
    # bench/harness/devmem.py: the framework's counters, peaks reset after setup (JAX cannot: see the note)
    train_peak_device_bytes: int | None = None  # training steps only, read before each evaluation
    eval_peak_device_bytes: int | None = None  # the evaluations apart
    device_reserved_bytes: int | None = None  # what the caching allocator held at most (torch); None elsewhere
    device_bytes_before_training: int | None = None  # in use after setup, before the first step
    nvml_peak_bytes: int | None = None  # this process's GPU memory as NVML sees it, max of the reads
    device_memory_note: str | None = None
    # After training (bench/harness/inference.py): the framework's inference path, then save and reload.
    latency_b1_s: float | None = None  # median of the batch-1 calls, logits back on the host
    latency_b1_p99_s: float | None = None
    latency_calls: int | None = None
    predict_samples_per_s: float | None = None  # at the evaluation batch (median call)
    predict_batch: int | None = None
    saved_bytes: int | None = None  # the framework's usual native format (the first in `saved`)
    save_time_s: float | None = None
    load_time_s: float | None = None  # file -> a model ready to predict
    reload_equal: bool | None = None  # the reloaded model's logits equal the trained model's, bit for bit
    saved: dict[str, Any] = field(default_factory=dict)  # per format: bytes, save_s, load_s, equal, max diff | error
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
        if self.optimizer is None and self.framework in FRAMEWORKS and self.task in TASKS:
            self.optimizer = optimizer_axis.own(TASKS[self.task])  # records from before --optimizer


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
    if base == "bool":
        return isinstance(value, bool)
    if base in ("int", "float"):
        number = (int,) if base == "int" else (int, float)
        return isinstance(value, number) and not isinstance(value, bool)
    if base.startswith("list["):
        return isinstance(value, list) and all(_fits(v, base[5:-1]) for v in value)
    if base.startswith("dict["):
        return isinstance(value, dict) and (base != "dict[str, str]" or all(isinstance(v, str) for v in value.values()))
    return True  # Any


# What makes two records the same cell (resume, latest) and, without seed and repeat, the same row of a
# report or comparison: a median is never taken over different tasks, devices, modes, data or epochs.
CELL_KEY = ("task", "framework", "device", "mode", "precision", "profile", "dataset", "seed", "repeat", "epochs",
            "side", "train_size", "optimizer", "devices")
GROUP_KEY = tuple(k for k in CELL_KEY if k not in ("seed", "repeat"))


def cell_key(item: Any) -> tuple[Any, ...]:
    """What makes two runs the same cell (a Record or a worker Cell)."""
    return tuple(getattr(item, k) for k in CELL_KEY)


def group_key(item: Any) -> tuple[Any, ...]:
    """The cell without its seed and repeat: what repeats share, what a report row and a comparison are."""
    return tuple(getattr(item, k) for k in GROUP_KEY)

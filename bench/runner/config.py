"""The validated configuration of a run: built once from the command line, never changed afterwards."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench.data import subsets
from bench.errors import UsageError
from bench.machine import available_cpus
from bench.spec import DATASETS, DEVICES, FRAMEWORKS, TASKS, optimizer_axis, sweep
from bench.spec.modes import MODES, PRECISIONS
from bench.spec.optimizers import NAMES
from bench.spec.sweep import BASELINE

MAX_SEED = 2**32 - 1
MAX_REPEATS = 100
MAX_DEVICES = 64
EXECUTORS = ("local", "slurm")


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _one_of(what: str, value: str, valid: tuple[str, ...] | list[str], flag: str | None = None) -> None:
    if value not in valid:
        prefix = f"--{flag}: " if flag else ""
        raise UsageError(f"{prefix}unknown {what} {value!r}; choose from {', '.join(valid)}")


@dataclass(frozen=True)
class RunConfig:
    """What a `bench run` (or `bench verify`) runs; __post_init__ refuses anything invalid with one clear line."""

    tasks: tuple[str, ...]
    frameworks: tuple[str, ...]
    devices: tuple[str, ...]
    profile: str = "smoke"
    dataset: str | None = None  # None: each task's default
    epochs: int | None = None  # per phase; None: the profile's, else the task's
    seed: int = 0
    repeats: int = 1  # independent worker processes per cell, seeds seed..seed+repeats-1
    same_seed: bool = False  # repeats reuse `seed`: only the machine's noise varies between them
    mode: str = "default"  # default | eager | compiled (bench/spec/modes.py); cells get the resolved one
    precision: str = "fp32"  # fp32 | bf16
    data_root: Path = Path(".")
    out: Path = Path("results")
    timeout_s: float = 3600.0
    pythons: dict[str, str] = field(default_factory=dict)  # framework -> interpreter
    threads: int = field(default_factory=available_cpus)  # CPU threads per worker
    run_id: str = field(default_factory=new_run_id)
    train_sizes: tuple[int | None, ...] = (None,)  # a size sweep (bench/data/subsets.py); None: the whole split
    baselines: tuple[str, ...] = ()  # classical baselines by name; (): each task's own (with framework sklearn)
    optimizers: tuple[str, ...] = ()  # bench/spec/optimizer_axis.py names; (): each task's own
    inference: bool = True  # after training: prediction latency/throughput, save and reload (docs/inference.md)
    n_devices: int = 1  # data-parallel width of every network cell (docs/distributed.md); 1: one device
    executor: str = "local"  # local: a subprocess per cell; slurm: a SLURM job per cell (docs/cluster.md)
    slurm_options: tuple[tuple[str, str], ...] = ()  # --slurm-opt KEY=VALUE, passed to submitit
    gpus: tuple[int, ...] | None = None  # --gpu: the GPUs a GPU cell sees, the first n_devices; None: 0..n-1
    warm_caches: bool = False  # --warm-caches: the user's compile caches; else fresh private ones per cell

    def __post_init__(self) -> None:
        for what, values, valid in (("task", self.tasks, list(TASKS)),
                                    ("framework", self.frameworks, (*FRAMEWORKS, BASELINE)),
                                    ("device", self.devices, DEVICES)):
            if not values:
                raise UsageError(f"no {what} chosen; choose from {', '.join(valid)}")
            for v in values:
                _one_of(what, v, valid)
        _one_of("profile", self.profile, [p for p in TASKS[self.tasks[0]].profiles])
        _one_of("mode", self.mode, MODES, "mode")
        _one_of("precision", self.precision, PRECISIONS, "precision")
        self._check_dataset()
        self._check_numbers()
        self._check_sweep()
        for name in self.optimizers:
            _one_of("optimizer", name, NAMES, "optimizer")
        if len(set(self.optimizers)) != len(self.optimizers):
            raise UsageError("--optimizer: give each optimizer once, e.g. sgd,adam")
        self._check_parallel()

    def _check_dataset(self) -> None:
        if self.dataset is None:
            return
        _one_of("dataset", self.dataset, list(DATASETS))
        for t in self.tasks:
            if self.dataset not in TASKS[t].datasets:
                raise UsageError(f"task {t} does not run on {self.dataset}; it takes {', '.join(TASKS[t].datasets)}")

    def _check_numbers(self) -> None:
        if not 1 <= self.repeats <= MAX_REPEATS:
            raise UsageError(f"--repeats {self.repeats} is outside 1..{MAX_REPEATS}")
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs {self.epochs} must be at least 1")
        if self.threads < 1:
            raise UsageError(f"--threads {self.threads} must be at least 1")
        if not self.timeout_s > 0:
            raise UsageError(f"--timeout {self.timeout_s} must be a positive number of seconds")
        last = self.seed if self.same_seed else self.seed + self.repeats - 1
        if not 0 <= self.seed or last > MAX_SEED:
            raise UsageError(f"--seed {self.seed} with --repeats {self.repeats} goes past the largest seed 2**32-1")

    def _check_sweep(self) -> None:
        if not self.train_sizes or len(set(self.train_sizes)) != len(self.train_sizes):
            raise UsageError("--train-size: give each size once, e.g. 256,768,all")
        for n in self.train_sizes:
            if n is not None:
                subsets.check_positive(n)
        if self.baselines and BASELINE not in self.frameworks:
            raise UsageError(f"--baseline needs --framework {BASELINE} (e.g. --framework all,{BASELINE})")
        for name in self.baselines:
            for t in self.tasks:
                served = [b.name for b in sweep.baselines(t)]
                if name not in served:
                    raise UsageError(f"--baseline {name} does not serve task {t}; its baselines: {', '.join(served)}")

    def _check_parallel(self) -> None:
        if not 1 <= self.n_devices <= MAX_DEVICES:
            raise UsageError(f"--devices {self.n_devices} is outside 1..{MAX_DEVICES}")
        for t in self.tasks:  # the global batch stays the spec's: every device takes an equal share
            batch = TASKS[t].batch_size
            if batch % self.n_devices:
                raise UsageError(f"--devices {self.n_devices} does not divide {t}'s batch of {batch}: "
                                 f"choose a divisor of {batch} (e.g. 2 or 4)")
        if self.n_devices > 1 and self.threads < self.n_devices and "cpu" in self.devices:
            raise UsageError(f"--devices {self.n_devices} on the CPU needs at least one thread per device; "
                             f"--threads is {self.threads}")
        self._check_gpus()
        _one_of("executor", self.executor, EXECUTORS, "executor")
        if self.slurm_options and self.executor != "slurm":
            raise UsageError("--slurm-opt needs --executor slurm")

    def _check_gpus(self) -> None:
        if self.gpus is None:
            return
        if not self.gpus or any(g < 0 for g in self.gpus) or len(set(self.gpus)) != len(self.gpus):
            raise UsageError(f"--gpu {','.join(map(str, self.gpus))}: give distinct GPU indices (0, 1, ...), e.g. 0,1")
        if "gpu" not in self.devices:
            raise UsageError("--gpu picks the GPUs of GPU cells: add --device gpu (or cpu,gpu)")
        if len(self.gpus) < self.n_devices:
            raise UsageError(f"--devices {self.n_devices} trains on {self.n_devices} GPUs but --gpu names "
                             f"{len(self.gpus)}: give {self.n_devices} indices, e.g. --gpu "
                             + ",".join(map(str, range(self.n_devices))))

    def gpu_indices(self) -> tuple[int, ...]:
        """The GPUs a GPU cell sees (CUDA_VISIBLE_DEVICES), in --gpu's order: the given ones, else 0..n-1."""
        return (self.gpus or tuple(range(self.n_devices)))[:self.n_devices]

    def baselines_of(self, task: str) -> tuple[str, ...]:
        """The classical baselines a task runs: the chosen ones, else all it has."""
        return self.baselines or tuple(b.name for b in sweep.baselines(task))

    def optimizers_of(self, task: str) -> tuple[str, ...]:
        """The optimizers a task's network cells run: the chosen ones, else the task's own."""
        return self.optimizers or (optimizer_axis.own(TASKS[task]),)

    def dataset_of(self, task: str) -> str:
        return self.dataset or TASKS[task].datasets[0]

"""`bench list`: tasks, profiles, frameworks (installed?), devices and the data root."""
from __future__ import annotations

import argparse
import importlib.metadata

from rich.table import Table

from bench import machine
from bench.cli.args import data_root, installed
from bench.cli.console import out_console
from bench.harness.adapter import FRAMEWORK_PACKAGES
from bench.spec import DATASETS, FRAMEWORKS, PROFILES, TASKS, PhotoFolder, optimizer_axis, param_count, sweep
from bench.spec.optimizers import NAMES
from bench.spec.sweep import BASELINE, TRAIN_SIZE_PRESETS


def _version(module: str) -> str:
    """The installed version of the distribution that provides `module` (sklearn: scikit-learn)."""
    dist = (importlib.metadata.packages_distributions().get(module) or [module])[0]
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tasks() -> Table:
    t = Table(title="tasks", header_style="bold")
    for col in ("task", "parameters", "epochs", "batch", "optimizer", "datasets", "description"):
        t.add_column(col)
    for name, task in TASKS.items():
        phases = task.phases
        epochs = f"{task.epochs} per phase x {len(phases)}" if len(phases) > 1 else str(task.epochs)
        opt = " then ".join(f"{ph.optimizer.name} lr {ph.optimizer.lr:g}" for ph in phases)
        t.add_row(name, f"{param_count(task):,}", epochs, str(task.batch_size), opt, ", ".join(task.datasets),
                  task.description)
    return t


def _profiles() -> Table:
    """One row per profile and group of tasks that share its limits."""
    p = Table(title="profiles", header_style="bold")
    for col in ("profile", "tasks", "epochs", "train examples", "test examples", "data"):
        p.add_column(col)
    for prof in PROFILES:
        groups: dict[int, list[str]] = {}
        for name, task in TASKS.items():
            groups.setdefault(id(task.profiles[prof]), []).append(name)
        for i, names in enumerate(groups.values()):
            task = TASKS[names[0]]
            own = task.profiles[prof]
            photos = isinstance(DATASETS[task.datasets[0]], PhotoFolder)
            data = ("photo folder (first files of each class in turn)" if photos else
                    "bundled offline subset" if own.bundled else "full dataset files")
            p.add_row(prof if i == 0 else "", ", ".join(names), str(own.epochs or "the task's") + " per phase",
                      str(own.train_limit or "all"), str(own.test_limit or "all"), data)
    return p


def cmd_list(args: argparse.Namespace) -> int:
    out_console.print(_tasks())
    out_console.print(_profiles())
    f = Table(title="frameworks (this interpreter)", header_style="bold")
    for col in ("framework", "installed", "versions"):
        f.add_column(col)
    for fw in (*FRAMEWORKS, BASELINE):
        f.add_row(fw, "yes" if installed(fw) else "[red]no[/]",
                  ", ".join(f"{m} {_version(m)}" for m in FRAMEWORK_PACKAGES[fw]))
    out_console.print(f)
    out_console.print(f"classical baselines (--framework {BASELINE}): " + "; ".join(
        f"{t}: {', '.join(b.name for b in sweep.baselines(t))}" for t in TASKS) + "; --train-size presets: "
        + "; ".join(f"{k} = {','.join(str(n or 'all') for n in v)}" for k, v in TRAIN_SIZE_PRESETS.items()))
    out_console.print(f"optimizers (--optimizer): {', '.join(NAMES)}; each task's own: "
                      + ", ".join(f"{t} {optimizer_axis.own(task)}" for t, task in TASKS.items()))
    gpus = machine.gpu_models()
    out_console.print(f"devices: cpu ({machine.cpu_model()}, {machine.available_cpus()} CPUs)"
                      + (f"; gpu: {', '.join(gpus)}" if gpus else "; gpu: none found by nvidia-smi"))
    out_console.print(f"data root: {data_root(None)} (override with --data-root or $BENCH_DATA)")
    return 0

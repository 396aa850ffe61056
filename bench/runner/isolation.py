"""A worker's environment, fixed before it imports any framework: threads, devices, allocators, autotuning."""
from __future__ import annotations

import os

from bench import machine
from bench.harness.cell import Cell
from bench.harness.worker import PARENT_ENV
from bench.spec.modes import autotune_env

HOST_DEVICES = "--xla_force_host_platform_device_count"
TORCHRUN = "torch.distributed.run"


def launcher(cell: Cell, python: str) -> list[str]:
    """What runs a cell's Python module: the interpreter; for a data-parallel torch cell, torchrun starting
    one process per device (a private rendezvous on a free local port; no restarts: a failed rank fails
    the cell)."""
    if cell.framework == "torch" and cell.devices > 1:
        return [python, "-m", TORCHRUN, "--standalone", f"--nproc-per-node={cell.devices}", "--max-restarts=0"]
    return [python]


def worker_argv(cell: Cell, python: str, cell_path: str, result_path: str) -> list[str]:
    return [*launcher(cell, python), "-m", "bench.harness.worker", cell_path, result_path]


def worker_env(cell: Cell, base: dict[str, str] | None = None) -> dict[str, str]:
    """The child's environment: `base` (default: this process's) with bench's settings over it."""
    env = dict(os.environ if base is None else base)
    # The cell's thread budget, per process: torchrun's N ranks share it (each pinned to its slice of the cores).
    processes = cell.devices if cell.framework == "torch" else 1
    n = str(max(1, (cell.threads or machine.available_cpus()) // processes))
    env.update({
        "PYTHONPATH": os.pathsep.join(filter(None, [str(machine.ROOT), env.get("PYTHONPATH")])),
        "PYTHONUNBUFFERED": "1",
        "BENCH_THREADS": n,
        PARENT_ENV: str(os.getpid()),  # the worker dies with this process
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
        if cell.devices > 1 and cell.framework == "jax":  # N host devices: read once, at JAX's import
            flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith(HOST_DEVICES)]
            env["XLA_FLAGS"] = " ".join([*flags, f"{HOST_DEVICES}={cell.devices}"])
    else:
        env.pop("JAX_PLATFORMS", None)
        env.update(autotune_env(env))  # one GPU autotuning policy for all three: on
    return env

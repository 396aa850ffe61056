"""A worker's environment, fixed before it imports any framework: threads, devices, allocators, autotuning."""
from __future__ import annotations

import os

from bench import machine
from bench.errors import UsageError
from bench.harness.caches import cache_env
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


def worker_env(cell: Cell, base: dict[str, str] | None = None, *, caches: str | None = None,
               gpus: tuple[int, ...] = (0,)) -> dict[str, str]:
    """The child's environment: `base` (default: this process's) with bench's settings over it. `caches`: the
    cell's private compile-cache folder (None: the user's caches, --warm-caches); `gpus`: --gpu's indices."""
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
        env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # --gpu's indices are nvidia-smi's, not fastest-first
        env["CUDA_VISIBLE_DEVICES"] = visible_gpus(env.get("CUDA_VISIBLE_DEVICES"), gpus, cell.devices)
        env.update(autotune_env(env))  # one GPU autotuning policy for all three: on
    return cache_env(env, caches)


def visible_gpus(inherited: str | None, gpus: tuple[int, ...], devices: int) -> str:
    """CUDA_VISIBLE_DEVICES for a GPU cell: the first `devices` of --gpu's indices, so TF and JAX open no
    context on the host's other GPUs. Indices count within an inherited list (a SLURM job's GPUs)."""
    chosen = gpus[:devices] if len(gpus) >= devices else tuple(range(devices))
    if not inherited:  # unset (all GPUs, nvidia-smi's order: see CUDA_DEVICE_ORDER below) or "" (none)
        return "" if inherited == "" else ",".join(map(str, chosen))
    pool = [g.strip() for g in inherited.split(",") if g.strip()]
    if max(chosen) >= len(pool):
        raise UsageError(f"--gpu {','.join(map(str, chosen))}: this process sees {len(pool)} GPUs "
                         f"(CUDA_VISIBLE_DEVICES={inherited}); choose indices 0..{len(pool) - 1}")
    return ",".join(pool[i] for i in chosen)

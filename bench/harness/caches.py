"""Compile caches: fresh, private folders per cell (so no framework starts warm from an earlier cell), or the
user's own caches with --warm-caches. The runner sets them in a worker's environment; the worker describes them."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping

MODE_ENV = "BENCH_COMPILE_CACHES"  # "private" | "warm": what the runner chose for this worker
PRIVATE, WARM = "private", "warm"
# Each on-disk compile cache that would make a later cell start warm, and its sub-folder in the cell's folder.
FOLDERS = {
    "TORCHINDUCTOR_CACHE_DIR": "inductor",  # inductor's FX graph, AOTAutograd and C++/Triton kernel caches
    "TRITON_CACHE_DIR": "triton",  # Triton's compiled GPU kernels (default ~/.triton/cache)
    "CUDA_CACHE_PATH": "cuda",  # the CUDA driver's PTX JIT cache (default ~/.nv/ComputeCache)
    "PYTORCH_KERNEL_CACHE_PATH": "torch-kernels",  # torch's NVRTC-fused kernels (default ~/.cache/torch/kernels)
}
# JAX's persistent cache is off unless a folder is set (jax_compilation_cache_dir defaults to None): keep it off.
JAX_OFF = {"JAX_ENABLE_COMPILATION_CACHE": "false"}
JAX_DIR = "JAX_COMPILATION_CACHE_DIR"
# Flags that would point TF's XLA (empty by default: no persistent cache) or XLA:GPU at a user's cache folder.
FLAG_VARS = {"TF_XLA_FLAGS": ("--tf_xla_persistent_cache_directory",),
             "XLA_FLAGS": ("--xla_gpu_per_fusion_autotune_cache_dir", "--xla_gpu_kernel_cache_file")}


@contextlib.contextmanager
def cell_folder(warm: bool) -> Iterator[str | None]:
    """A fresh folder for one cell's compile caches under the system's temp dir (a SLURM node's own), removed
    when the cell ends; None with --warm-caches."""
    if warm:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="bench-caches-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def cache_env(env: Mapping[str, str], folder: str | None) -> dict[str, str]:
    """`env` with the compile caches pointed into `folder` (created here), or left as the user's when None."""
    out = dict(env)
    if folder is None:
        out[MODE_ENV] = WARM
        return out
    for name, sub in FOLDERS.items():
        out[name] = os.path.join(folder, sub)
        os.makedirs(out[name], exist_ok=True)
    out.pop(JAX_DIR, None)
    out.update(JAX_OFF)
    for var, prefixes in FLAG_VARS.items():
        if var in out:
            out[var] = " ".join(f for f in out[var].split() if not f.startswith(prefixes))
    out[MODE_ENV] = PRIVATE
    return out


def describe(env: Mapping[str, str] = os.environ) -> str:
    """The record's words for the compile caches this worker runs with (settings["compile_caches"])."""
    mode = env.get(MODE_ENV)
    if mode == WARM:
        return "warm: the user's caches (--warm-caches)"
    if mode == PRIVATE:
        return (f"private, fresh per cell: {', '.join(FOLDERS)}; JAX persistent cache off "
                f"({JAX_DIR} unset); TF XLA persistent cache off (its default)")
    return f"unknown: not started by bench run ({MODE_ENV} unset)"

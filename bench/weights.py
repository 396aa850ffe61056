"""Initial weights per (task, seed), made in NumPy and stored in one neutral .npz layout.

Layout (every framework converts from this): keys `layers.<i>.kernel` / `layers.<i>.bias`,
<i> the index in the spec's layer list; float32; Dense kernels (in, out); Conv kernels
(kh, kw, in, out) = HWIO; a Dense after Flatten reads its input in (H, W, C) order.
"""
from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.spec import TaskSpec, param_shapes

# A fixed second entropy word keeps the init stream apart from the data-order stream.
_INIT_STREAM = 0x1A17


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras' convention: a conv's receptive field multiplies both fans.
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def init_weights(task: TaskSpec, seed: int) -> dict[str, np.ndarray]:
    """glorot_uniform kernels (U(-l, l), l = sqrt(6 / (fan_in + fan_out))) and zero biases."""
    if task.init != "glorot_uniform":
        raise BenchError(f"unknown initializer {task.init!r} in the spec of {task.name}")
    rng = np.random.default_rng((seed, _INIT_STREAM))
    out: dict[str, np.ndarray] = {}
    for name, shape in param_shapes(task).items():
        if name.endswith(".kernel"):
            fan_in, fan_out = _fans(shape)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out


def digest(weights: dict[str, np.ndarray]) -> str:
    """sha256 over names, shapes and bytes: equal digests mean equal starting points."""
    h = hashlib.sha256()
    for name in sorted(weights):
        arr = np.ascontiguousarray(weights[name], dtype=np.float32)
        h.update(f"{name}{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def save(weights: dict[str, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **weights)
    os.replace(tmp, path)


def load(path: Path, task: TaskSpec) -> dict[str, np.ndarray]:
    """Read a weights file (never with pickle) and check it has exactly the spec's shapes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable weights file ({exc}); delete it to regenerate") from None
    want = param_shapes(task)
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != want:
        raise BenchError(f"{path}: parameter shapes {got} do not match the spec of {task.name}")
    return weights


def materialize(task: TaskSpec, seed: int, folder: Path) -> tuple[Path, str]:
    """Write the (task, seed) initial weights under folder once; return the path and digest."""
    weights = init_weights(task, seed)
    path = folder / f"{task.name}-seed{seed}.npz"
    if not path.exists() or digest(load(path, task)) != digest(weights):
        save(weights, path)
    return path, digest(weights)

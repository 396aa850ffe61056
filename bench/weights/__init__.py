"""Initial weights per (task, seed): made in NumPy (or converted from published weights), stored in
one neutral .npz layout (bench/spec/shapes.py) that every framework converts from."""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from bench.errors import BenchError
from bench.files import replacing
from bench.spec import TaskSpec
from bench.spec.shapes import weight_shapes

# A fixed second entropy word keeps the init stream apart from the data-order stream.
_INIT_STREAM = 0x1A17
# A fresh BatchNorm: identity scale and statistics.
_FRESH_BN = {".bn.scale": 1.0, ".bn.bias": 0.0, ".bn.mean": 0.0, ".bn.var": 1.0}


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras' convention: a conv's receptive field multiplies both fans.
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def init_weights(task: TaskSpec, seed: int, data_root: Path | None = None) -> dict[str, np.ndarray]:
    """The task's starting point: its pretrained tensors where it has published weights, and for every
    other tensor glorot_uniform kernels (U(-l, l), l = sqrt(6 / (fan_in + fan_out))), zero biases and
    fresh BatchNorms, drawn in the layout's order from one (seed)-stream."""
    if task.init != "glorot_uniform":
        raise BenchError(f"unknown initializer {task.init!r} in the spec of {task.name}")
    out: dict[str, np.ndarray] = {}
    if task.pretrained is not None:
        from bench.weights.pretrained import load_pretrained

        out.update(load_pretrained(task, data_root))
    rng = np.random.default_rng((seed, _INIT_STREAM))
    for name, shape in weight_shapes(task).items():
        if name in out:
            continue
        if name.endswith(".kernel"):
            fan_in, fan_out = _fans(shape)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        else:
            fill = next((v for suffix, v in _FRESH_BN.items() if name.endswith(suffix)), 0.0)
            out[name] = np.full(shape, fill, np.float32)
    return {name: out[name] for name in weight_shapes(task)}  # the layout's order, whatever came first


# A separate stream for the perturbation below, apart from the init and data-order streams.
_VERIFY_STREAM = 0xB1A5


def for_verification(weights: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """The weights with every constant bias and BatchNorm tensor made varied: fresh biases (all 0),
    fresh BatchNorm scale, mean and variance (1, 0, 1). From constants, a framework that dropped a
    bias or a statistic would still agree with the others; verification must not start there.

    Biases and means get N(0, 0.1) noise, scales and variances a factor exp(N(0, 0.1)); kernels and
    pretrained tensors (already varied) stay exactly as they are.
    """
    rng = np.random.default_rng((seed, _VERIFY_STREAM))
    out = dict(weights)
    for name in sorted(weights):
        value = weights[name]
        if np.ptp(value) > 0 or not name.endswith((".bias", ".mean", ".scale", ".var")):
            continue
        noise = rng.normal(0.0, 0.1, value.shape)
        scaled = name.endswith((".scale", ".var"))  # must stay positive
        out[name] = (value * np.exp(noise) if scaled else value + noise).astype(np.float32)
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
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **weights)  # type: ignore[arg-type]  # numpy's stub: a tensor could be named allow_pickle


def load(path: Path, task: TaskSpec) -> dict[str, np.ndarray]:
    """Read a weights file (never with pickle) and check it has exactly the spec's shapes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable weights file ({exc}); delete it to regenerate") from None
    want = weight_shapes(task)
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:3]
        raise BenchError(f"{path}: parameter shapes do not match the spec of {task.name} (e.g. {diff})")
    return weights


def file_name(task: TaskSpec, seed: int, verification: bool = False) -> str:
    return f"{task.name}-seed{seed}{'-verify' if verification else ''}.npz"


def materialize(task: TaskSpec, seed: int, folder: Path, data_root: Path | None = None,
                verification: bool = False) -> tuple[Path, str]:
    """Write the (task, seed) initial weights under folder once (for `bench verify`: with
    for_verification's varied biases); return the path and digest."""
    weights = init_weights(task, seed, data_root)
    if verification:
        weights = for_verification(weights, seed)
    path = folder / file_name(task, seed, verification)
    if not path.exists() or digest(load(path, task)) != digest(weights):
        save(weights, path)
    return path, digest(weights)

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
from bench.shapes import param_shapes
from bench.spec import TaskSpec
from bench.vision import BACKBONES, TransferTaskSpec, head_shapes, transfer_shapes

AnyTask = TaskSpec | TransferTaskSpec

# A fixed second entropy word keeps the init stream apart from the data-order stream.
_INIT_STREAM = 0x1A17


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    # Keras' convention: a conv's receptive field multiplies both fans.
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def shapes(task: AnyTask) -> dict[str, tuple[int, ...]]:
    """Every neutral tensor of the task's weights file and its shape."""
    return transfer_shapes(task) if isinstance(task, TransferTaskSpec) else param_shapes(task)


def init_weights(task: AnyTask, seed: int, data_root: Path | None = None) -> dict[str, np.ndarray]:
    """glorot_uniform kernels (U(-l, l), l = sqrt(6 / (fan_in + fan_out))) and zero biases.

    A transfer task starts from the backbone's verified ImageNet weights; only its new head
    (`top.*`) is drawn here.
    """
    if task.init != "glorot_uniform":
        raise BenchError(f"unknown initializer {task.init!r} in the spec of {task.name}")
    rng = np.random.default_rng((seed, _INIT_STREAM))
    out: dict[str, np.ndarray] = {}
    fresh = param_shapes(task) if isinstance(task, TaskSpec) else {
        k: v for k, v in head_shapes(task).items() if k.startswith("top.")}
    if isinstance(task, TransferTaskSpec):
        from bench.pretrained import load_backbone

        out.update(load_backbone(BACKBONES[task.backbone], data_root))
    for name, shape in fresh.items():
        if name.endswith(".kernel"):
            fan_in, fan_out = _fans(shape)
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            out[name] = rng.uniform(-limit, limit, size=shape).astype(np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out


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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **weights)
    os.replace(tmp, path)


def load(path: Path, task: AnyTask) -> dict[str, np.ndarray]:
    """Read a weights file (never with pickle) and check it has exactly the spec's shapes."""
    try:
        with np.load(path, allow_pickle=False) as z:
            weights = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable weights file ({exc}); delete it to regenerate") from None
    want = shapes(task)
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:3]
        raise BenchError(f"{path}: parameter shapes do not match the spec of {task.name} (e.g. {diff})")
    return weights


def file_name(task: AnyTask, seed: int, verification: bool = False) -> str:
    return f"{task.name}-seed{seed}{'-verify' if verification else ''}.npz"


def materialize(task: AnyTask, seed: int, folder: Path, data_root: Path | None = None,
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

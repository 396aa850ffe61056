"""The runtime TF32 check: an fp32 matmul on the cell's device against a float64 reference. TF32 keeps
10 mantissa bits (relative error ~1e-3 on a dot product), fp32 23 (~1e-6): a setting that did not take
effect shows here, whatever the framework's flags say."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

Matmul = Callable[[np.ndarray, np.ndarray], np.ndarray]
LIMIT = 1e-4  # two decades above fp32's error on these shapes, one below TF32's
SHAPE = (128, 512, 64)


def relative_error(matmul: Matmul) -> float:
    m, k, n = SHAPE
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    want = a.astype(np.float64) @ b.astype(np.float64)
    got = np.asarray(matmul(a, b), np.float64)
    return float(np.abs(got - want).max() / np.abs(want).max())


def check(matmul: Matmul) -> str:
    """The settings' words: the error and what it means."""
    err = relative_error(matmul)
    verdict = "fp32 (no TF32)" if err <= LIMIT else "reduced precision (TF32 or lower) in fp32 matmuls"
    return f"{verdict}: fp32 matmul max error {err:.1e} of the largest value, against float64"

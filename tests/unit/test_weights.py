"""Initial weights: one seeded NumPy stream per (task, seed), stored without pickle."""
import math

import numpy as np
import pytest

from bench import weights
from bench.errors import BenchError
from bench.spec import TASKS
from bench.spec.shapes import param_shapes


def test_same_seed_same_weights_other_seed_other_weights():
    cnn = TASKS["mnist_cnn"]
    a, b, c = weights.init_weights(cnn, 0), weights.init_weights(cnn, 0), weights.init_weights(cnn, 1)
    assert weights.digest(a) == weights.digest(b) != weights.digest(c)
    assert {k: v.shape for k, v in a.items()} == param_shapes(cnn)


def test_glorot_uniform_bounds_and_zero_biases():
    w = weights.init_weights(TASKS["mnist_cnn"], 3)
    limit = math.sqrt(6 / (9 * 32 + 9 * 64))  # conv 3x3, 32 -> 64: fans include the receptive field
    k = w["layers.2.kernel"]
    assert np.abs(k).max() <= limit and np.abs(k).max() > 0.95 * limit
    assert abs(k.std() - limit / math.sqrt(3)) < 0.01 * limit * 3
    assert all((w[n] == 0).all() for n in w if n.endswith(".bias"))


def test_file_round_trip_and_shape_check(tmp_path):
    mlp = TASKS["mnist_mlp"]
    path, digest = weights.materialize(mlp, 0, tmp_path)
    assert weights.digest(weights.load(path, mlp)) == digest
    with pytest.raises(BenchError, match="do not match"):
        weights.load(path, TASKS["mnist_cnn"])


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, **{"layers.1.kernel": np.array([object()], dtype=object)})
    with pytest.raises(BenchError, match="not a readable weights file"):
        weights.load(path, TASKS["mnist_mlp"])

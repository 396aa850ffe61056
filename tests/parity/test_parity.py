"""The frameworks against each other: same weights and batches give the same logits and the same training."""
import itertools

import numpy as np
import pytest

from bench import weights
from bench.adapter import load_adapter
from bench.spec import TASKS
from tests.conftest import has
from tests.frameworks.helpers import batches, smooth, smoke_data

AVAILABLE = [fw for fw in ("tf", "torch", "jax") if has(fw)]
pytestmark = [pytest.mark.parity,
              pytest.mark.skipif(len(AVAILABLE) < 2, reason="parity needs at least two frameworks installed")]


@pytest.mark.parametrize("task_name", ["mnist_mlp", "mnist_cnn"])
def test_same_weights_same_logits(task_name):
    task = TASKS[task_name]
    w = weights.init_weights(task, 0)
    x = smoke_data(task_name).test.x[: task.verify_batch]
    logits = {}
    for fw in AVAILABLE:
        adapter = load_adapter(fw)
        adapter.build(task, w, "cpu", 0)
        logits[fw] = adapter.predict(x)
    for a, b in itertools.combinations(AVAILABLE, 2):
        assert np.abs(logits[a] - logits[b]).max() <= task.verify_tolerance, (a, b)
    # Logits that agree because they are all zero (or all equal) would prove nothing.
    assert np.std(logits[AVAILABLE[0]]) > 0.01


def test_cnn_training_agrees_step_by_step():
    """Conv layouts, the channels-first flatten permutation and Adam, through gradients too.

    On the kink-free CNN (helpers.smooth) the three agree to about 1e-6 after 5 steps; with ReLU,
    a pre-activation rounded to the other side of zero flips single Adam steps (up to 2 * lr).
    """
    task = smooth(TASKS["mnist_cnn"])
    w = weights.init_weights(task, 2)
    steps = batches(task, 5)
    losses, final = {}, {}
    for fw in AVAILABLE:
        adapter = load_adapter(fw)
        adapter.build(task, w, "cpu", 0)
        losses[fw] = [float(adapter.train_step(x, y)) for x, y in steps]
        final[fw] = adapter.get_weights()
    for a, b in itertools.combinations(AVAILABLE, 2):
        assert np.allclose(losses[a], losses[b], rtol=0, atol=1e-5), (a, b, losses[a], losses[b])
        for k in w:
            assert np.abs(final[a][k] - final[b][k]).max() < 1e-5, (a, b, k)
    assert losses[AVAILABLE[0]][-1] < losses[AVAILABLE[0]][0]  # it did train
    moved = max(float(np.abs(final[AVAILABLE[0]][k] - w[k]).max()) for k in w)
    assert moved > 1e-3

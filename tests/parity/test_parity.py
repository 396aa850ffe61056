"""The frameworks against each other: same weights and batches give the same logits and the same training."""
import itertools

import numpy as np
import pytest

from bench import weights
from bench.harness.adapter import load_adapter
from bench.spec import TASKS
from tests.conftest import has
from tests.frameworks.helpers import batches, smoke_data, smooth, train_everywhere

AVAILABLE = [fw for fw in ("tf", "torch", "jax") if has(fw)]
pytestmark = [pytest.mark.parity,
              pytest.mark.skipif(len(AVAILABLE) < 2, reason="parity needs at least two frameworks installed")]


# About 10x what this 2-core AVX2 CPU measured (max over the framework pairs), from weights whose
# biases are not 0 (weights.for_verification): logits 9.1e-7 (MLP) and 3.0e-7 (CNN); the smooth CNN
# after 5 steps: |Δ loss| 2.4e-7, |Δ weight| 8.8e-6 (Adam turns near-zero gradients into steps).
LOGIT_TOLERANCE = {"mnist_mlp": 1e-5, "mnist_cnn": 3e-6}
CNN_STEPS_TOLERANCE = {"loss": 3e-6, "weights": 1e-4}


@pytest.mark.parametrize("task_name", ["mnist_mlp", "mnist_cnn"])
def test_same_weights_same_logits(task_name):
    task = TASKS[task_name]
    w = weights.for_verification(weights.init_weights(task, 0), 0)  # no zero bias: a dropped one must show
    x = smoke_data(task_name).test.x[: task.verify_batch]
    logits = {}
    for fw in AVAILABLE:
        adapter = load_adapter(fw)
        adapter.build(task, w, "cpu", 0)
        logits[fw] = adapter.predict(x)
    gap = max(float(np.abs(logits[a] - logits[b]).max()) for a, b in itertools.combinations(AVAILABLE, 2))
    print(f"{task_name}: max |Δ logit| {gap:.1e}")
    assert gap <= LOGIT_TOLERANCE[task_name]
    # Logits that agree because they are all zero (or all equal) would prove nothing.
    assert np.std(logits[AVAILABLE[0]]) > 0.01


def test_cnn_training_agrees_step_by_step():
    """Conv layouts, the channels-first flatten permutation and Adam, through gradients too.

    On the kink-free CNN (helpers.smooth) the three agree to about 1e-6 after 5 steps; with ReLU,
    a pre-activation rounded to the other side of zero flips single Adam steps (up to 2 * lr).
    """
    task = smooth(TASKS["mnist_cnn"])
    w = weights.for_verification(weights.init_weights(task, 2), 2)
    loss_gap, weight_gap, losses, final = train_everywhere(AVAILABLE, task, w, batches(task, 5))
    print(f"smooth mnist_cnn, 5 steps: max |Δ loss| {loss_gap:.1e}, max |Δ weight| {weight_gap:.1e}")
    assert loss_gap < CNN_STEPS_TOLERANCE["loss"] and weight_gap < CNN_STEPS_TOLERANCE["weights"]
    assert losses[AVAILABLE[0]][-1] < losses[AVAILABLE[0]][0]  # it did train
    moved = max(float(np.abs(final[AVAILABLE[0]][k] - w[k]).max()) for k in w)
    assert moved > 1e-3

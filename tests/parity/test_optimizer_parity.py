"""Every optimizer of the axis across the frameworks: the smooth MLP trained 20 steps with each rule from
the same weights and batches ends with the same losses and weights in every installed framework."""

import numpy as np
import pytest

from bench import weights
from bench.spec import TASKS
from bench.spec.optimizer_axis import MNIST_LR
from bench.spec.optimizers import NAMES, rule
from tests.conftest import has
from tests.frameworks.helpers import batches, smooth, train_everywhere, with_optimizer

AVAILABLE = [fw for fw in ("tf", "torch", "jax") if has(fw)]
pytestmark = [pytest.mark.parity,
              pytest.mark.skipif(len(AVAILABLE) < 2, reason="parity needs at least two frameworks installed")]

STEPS = 20
# About 10x what this 2-core AVX2 CPU measured (max over the framework pairs, 20 steps at the MNIST
# learning rates from weights.for_verification of seed 3). Max |Δ loss| 4.8e-7 for every rule: two
# float32 ulps of the first step's loss (2.41, torch against TF and JAX, before any update).
# Max |Δ weight|: SGD 1.5e-8, momentum 2.2e-8, Nesterov 3.0e-8, Adagrad 3.0e-8, RMSprop 7.5e-8,
# Adam and AdamW 1.5e-5 (g / (|g| + eps) turns float32 rounding of near-zero gradients into steps).
LOSS_TOLERANCE = 5e-6
WEIGHT_TOLERANCE = {"sgd": 1.5e-7, "momentum": 2e-7, "nesterov": 3e-7, "adagrad": 3e-7, "rmsprop": 8e-7,
                    "adam": 1.5e-4, "adamw": 1.5e-4}


@pytest.mark.parametrize("name", NAMES)
def test_every_optimizer_trains_alike_in_every_framework(name):
    task = with_optimizer(smooth(TASKS["mnist_mlp"]), rule(name, MNIST_LR[name]))  # kink-free: see helpers.smooth
    w = weights.for_verification(weights.init_weights(task, 3), 3)
    loss_gap, weight_gap, losses, final = train_everywhere(AVAILABLE, task, w, batches(task, STEPS))
    moved = max(float(np.abs(final[AVAILABLE[0]][k] - w[k]).max()) for k in w)
    print(f"{name}, {STEPS} steps: max |Δ loss| {loss_gap:.1e}, max |Δ weight| {weight_gap:.1e}, moved {moved:.1e}")
    assert loss_gap < LOSS_TOLERANCE and weight_gap < WEIGHT_TOLERANCE[name]
    assert losses[AVAILABLE[0]][-1] < losses[AVAILABLE[0]][0]  # it did train
    assert moved > 1e-3

"""The spec pins shapes, parameter counts, FLOPs and the hash that makes records comparable."""
import dataclasses

import numpy as np
import pytest

from bench.errors import UsageError
from bench.runner import RunConfig
from bench.spec import TASKS, Adam, Dense, Flatten, LossType, param_count, resolve_epochs, spec_hash
from bench.spec.flops import task_flops
from bench.spec.optimizers import SGD, Adagrad, AdamW, rule
from bench.spec.reference import ReferenceOptimizer
from bench.spec.shapes import flatten_input_shape, layer_shapes, param_shapes
from tests.frameworks.helpers import with_optimizer

# The hash of each task as it stands. A change to a task (or to how the hash is computed) changes it,
# which makes older records "not comparable" in `bench compare` and refused by `--resume`: update
# these only on purpose, and say so in the commit and docs/records.md.
SPEC_HASHES = {"mnist_mlp": "390b47ef93b1ff44", "mnist_cnn": "25cae8293c5fb7c2", "cats_vs_dogs": "cc7c75d27a9d1940"}


def test_parameter_counts_match_the_keras_examples():
    # Keras prints these for mnist_mlp and mnist_convnet.
    assert param_count(TASKS["mnist_mlp"]) == 669_706
    assert param_count(TASKS["mnist_cnn"]) == 34_826


def test_cnn_shapes_and_the_flatten_that_channels_first_frameworks_must_permute():
    cnn = TASKS["mnist_cnn"]
    assert layer_shapes(cnn)[:5] == [(26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (1600,)]
    assert flatten_input_shape(cnn) == {"layers.6": (5, 5, 64)}
    assert param_shapes(cnn)["layers.2.kernel"] == (3, 3, 32, 64)
    assert flatten_input_shape(TASKS["mnist_mlp"]) == {"layers.1": (28, 28, 1)}


def test_analytic_flops_match_the_design_figures():
    assert task_flops(TASKS["mnist_mlp"])["forward"] == 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert round(task_flops(TASKS["mnist_cnn"])["train"] / 1e6, 1) == 14.6


def test_spec_hash_is_pinned_stable_and_sees_every_hyper_parameter():
    assert {name: spec_hash(task) for name, task in TASKS.items()} == SPEC_HASHES
    cnn = TASKS["mnist_cnn"]
    assert spec_hash(cnn) == spec_hash(dataclasses.replace(cnn))
    other_eps = with_optimizer(cnn, dataclasses.replace(cnn.phases[0].optimizer, eps=1e-8))
    assert spec_hash(other_eps) != spec_hash(cnn)
    other_input = dataclasses.replace(cnn, input=dataclasses.replace(cnn.input, scale=1.0))
    assert spec_hash(other_input) != spec_hash(cnn)


def test_framework_defaults_are_never_relied_on():
    # Keras Adam/RMSprop default eps is 1e-7, torch/optax 1e-8: the spec must say which.
    assert TASKS["mnist_cnn"].phases[0].optimizer == Adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)
    mlp = TASKS["mnist_mlp"].phases[0].optimizer
    assert (mlp.lr, mlp.rho, mlp.eps, mlp.momentum, mlp.centered) == (1e-3, 0.9, 1e-7, 0.0, False)


def test_every_task_is_one_model_with_its_loss_and_phases():
    for task in TASKS.values():
        assert isinstance(task.layers[-1], Dense) and task.phases and task.profiles.keys() == {"smoke", "quick",
                                                                                             "standard"}
    cats = TASKS["cats_vs_dogs"]
    assert cats.loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY and cats.num_classes == 2
    assert TASKS["mnist_mlp"].loss is LossType.SOFTMAX_CROSS_ENTROPY and TASKS["mnist_mlp"].num_classes == 10
    assert isinstance(TASKS["mnist_mlp"].layers[0], Flatten)


def test_profiles_resolve_epochs():
    mlp = TASKS["mnist_mlp"]
    assert resolve_epochs(mlp, "standard") == 20
    assert resolve_epochs(TASKS["mnist_cnn"], "standard") == 15
    assert resolve_epochs(mlp, "quick") == 2
    assert resolve_epochs(mlp, "smoke", override=5) == 5
    assert resolve_epochs(TASKS["cats_vs_dogs"], "smoke") == 1  # per phase


@pytest.mark.parametrize("field,value,message", [
    ("tasks", ("nope",), "unknown task 'nope'"), ("frameworks", (), "no framework chosen"),
    ("profile", "huge", "unknown profile 'huge'"), ("mode", "fast", "--mode: unknown mode 'fast'"),
    ("dataset", "cats_vs_dogs", "task mnist_mlp does not run on cats_vs_dogs"), ("repeats", 0, "outside 1..100"),
    ("seed", 2**32 - 1, "goes past the largest seed"), ("timeout_s", 0.0, "positive"), ("epochs", 0, "at least 1"),
])
def test_a_run_configuration_is_validated_when_built(field, value, message):
    base = dict(tasks=("mnist_mlp",), frameworks=("torch",), devices=("cpu",), repeats=2)
    with pytest.raises(UsageError, match=message):
        RunConfig(**{**base, field: value})
    cfg = RunConfig(**base)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.seed = 3  # type: ignore[misc]  # the point: a frozen config refuses this


def _two_steps(spec, grads, variant="spec"):
    """The reference's weights after one update per gradient, from w = [1, -2]."""
    opt, params = ReferenceOptimizer(spec, variant), {"w": np.array([1.0, -2.0])}
    for g in grads:
        opt.update(params, {"w": np.array(g)})
    return params["w"]


G_SGD = ([0.5, -1.0], [0.25, 2.0])


@pytest.mark.parametrize("name,expected", [
    ("sgd", [0.925, -2.1]),  # w - 0.1 * (g1 + g2)
    ("momentum", [0.88, -2.01]),  # v1 = g1 -> [0.95, -1.9]; v2 = 0.9 v1 + g2 = [0.7, 1.1]
    ("nesterov", [0.817, -2.109]),  # steps g1 + 0.9 v1 = [0.95, -1.9], then g2 + 0.9 v2 = [0.88, 2.99]
])
def test_reference_sgd_rules_match_hand_computed_steps(name, expected):
    spec = rule(name, 0.1)
    assert isinstance(spec, SGD) and spec.momentum == (0.0 if name == "sgd" else 0.9)
    np.testing.assert_allclose(_two_steps(spec, G_SGD), expected, rtol=0, atol=1e-15)


def test_reference_adagrad_matches_hand_computed_steps():
    # a + eps starts at 0.2 + 0.05 = 0.25; sqrt(0.25 + 1.2^2) = 1.3, sqrt(1.69 + 8.4^2) = 8.5.
    spec = Adagrad(lr=0.1, initial_accumulator=0.2, eps=0.05)
    got = _two_steps(spec, ([1.2, 0.0], [8.4, -1.2]))
    np.testing.assert_allclose(got, [1 - 0.12 / 1.3 - 0.84 / 8.5, -2 + 0.12 / 1.3], rtol=0, atol=1e-15)
    # torch's default: the accumulator from 0 and eps outside the sqrt make the first step lr * sign(g).
    np.testing.assert_allclose(_two_steps(spec, ([1.2, -3.0],), "torch_adagrad"), [0.9, -1.9], rtol=1e-9)


def test_reference_adamw_decays_before_the_adam_step():
    # eps 0 for round numbers: step 1 is lr * sign(g); at step 2 (b1 = 0.5, b2 = 0.75) m_hat = (g1 + 2 g2) / 3
    # and v_hat = (3 g1^2 + 4 g2^2) / 7, i.e. [1, 2/3] and [1, 4]. Each step first scales w by 1 - lr*wd = 0.95.
    spec = AdamW(lr=0.1, beta1=0.5, beta2=0.75, eps=0.0, weight_decay=0.5)
    got = _two_steps(spec, ([1.0, -2.0], [1.0, 2.0]))
    # [1, -2] -> decay [0.95, -1.9] -> step [0.85, -1.8] -> decay [0.8075, -1.71] -> step -0.1 * [1, 1/3]
    np.testing.assert_allclose(got, [0.7075, -1.71 - 0.1 / 3], rtol=0, atol=1e-15)

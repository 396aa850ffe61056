"""The spec pins shapes, parameter counts, FLOPs and the hash that makes records comparable."""
import dataclasses

from bench.shapes import flatten_input_shape, flops_per_sample, layer_shapes, param_shapes
from bench.spec import PROFILES, TASKS, Adam, param_count, resolve_epochs, spec_hash


def test_parameter_counts_match_the_keras_examples():
    # Keras prints these for mnist_mlp and mnist_convnet.
    assert param_count(TASKS["mnist_mlp"]) == 669_706
    assert param_count(TASKS["mnist_cnn"]) == 34_826


def test_cnn_shapes_and_the_flatten_that_channels_first_frameworks_must_permute():
    cnn = TASKS["mnist_cnn"]
    assert layer_shapes(cnn)[:5] == [(26, 26, 32), (13, 13, 32), (11, 11, 64), (5, 5, 64), (1600,)]
    assert flatten_input_shape(cnn) == {6: (5, 5, 64)}
    assert param_shapes(cnn)["layers.2.kernel"] == (3, 3, 32, 64)
    assert flatten_input_shape(TASKS["mnist_mlp"]) == {1: (28, 28, 1)}


def test_analytic_flops_match_the_design_figures():
    assert flops_per_sample(TASKS["mnist_mlp"])["forward"] == 2 * (784 * 512 + 512 * 512 + 512 * 10)
    assert round(flops_per_sample(TASKS["mnist_cnn"])["train"] / 1e6, 1) == 14.6


def test_spec_hash_is_stable_and_sees_every_hyper_parameter():
    cnn = TASKS["mnist_cnn"]
    assert spec_hash(cnn) == spec_hash(dataclasses.replace(cnn))
    other_eps = dataclasses.replace(cnn, optimizer=dataclasses.replace(cnn.optimizer, eps=1e-8))
    assert spec_hash(other_eps) != spec_hash(cnn)
    assert spec_hash(TASKS["mnist_mlp"]) != spec_hash(cnn)


def test_framework_defaults_are_never_relied_on():
    # Keras Adam/RMSprop default eps is 1e-7, torch/optax 1e-8: the spec must say which.
    assert TASKS["mnist_cnn"].optimizer == Adam(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7)
    mlp = TASKS["mnist_mlp"].optimizer
    assert (mlp.lr, mlp.rho, mlp.eps, mlp.momentum, mlp.centered) == (1e-3, 0.9, 1e-7, 0.0, False)


def test_profiles_resolve_epochs():
    mlp = TASKS["mnist_mlp"]
    assert resolve_epochs(mlp, PROFILES["standard"]) == 20
    assert resolve_epochs(TASKS["mnist_cnn"], PROFILES["standard"]) == 15
    assert resolve_epochs(mlp, PROFILES["quick"]) == 2
    assert resolve_epochs(mlp, PROFILES["smoke"], override=5) == 5

"""The adapter contract (bench/harness/adapter.py), one suite over the three frameworks and every task:
counts, exact weights, what each phase trains, the loss the spec names, dropout, the auxiliary head."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from bench import weights
from bench.data.images import SAMPLE_PHOTOS, sample_photos
from bench.harness.adapter import DeviceUnavailable, load_adapter
from bench.harness.evaluate import metrics
from bench.spec import TASKS
from bench.spec.shapes import BN_STATISTICS, conv_bns, is_trainable, param_counts
from tests.conftest import FW_PARAMS
from tests.frameworks.helpers import batches, built, changed_keys, without_dropout

CATS = TASKS["cats_vs_dogs"]


@pytest.fixture(scope="module")
def photos() -> SimpleNamespace:
    """The real sample photos (a cat, a coffee cup), normalised, with labels 0 and 1."""
    return SimpleNamespace(x=sample_photos(CATS.input), y=np.array([0, 1], np.int32))


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("fw", FW_PARAMS)
def test_counts_follow_the_spec_and_weights_round_trip_bit_for_bit(fw, task_name):
    task = TASKS[task_name]
    w = weights.init_weights(task, 5)
    a = built(fw, task, w, phase=None)
    want = param_counts(task)
    assert a.param_count() == want["total"] and a.trainable_count() == 0  # no phase yet: nothing trains
    for i in [*range(len(task.phases))][::-1]:  # the last phase first, then back: re-freezing works too
        a.set_phase(i)
        assert a.trainable_count() == want[task.phases[i].name], task.phases[i].name
    back = a.get_weights()
    assert back.keys() == w.keys()
    for k in w:
        assert back[k].dtype == np.float32 and back[k].shape == w[k].shape and np.array_equal(back[k], w[k]), k


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_the_pretrained_head_recognises_real_photos(fw, photos):
    a = built(fw, CATS, weights.init_weights(CATS, 0))
    logits = a.predict_aux(photos.x)
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert int(np.argmax(logits[0])) in SAMPLE_PHOTOS["chelsea"][1]
    assert set(np.argsort(-logits[1])[:5].tolist()) & set(SAMPLE_PHOTOS["coffee"][1])


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_each_phase_trains_exactly_its_parameters(fw, photos):
    task = without_dropout(CATS)
    w = weights.init_weights(task, 0)
    a = built(fw, task, w, phase=None)
    seen = w
    for i, phase in enumerate(task.phases):
        a.set_phase(i)
        for _ in range(2):
            assert np.isfinite(float(a.train_step(photos.x, photos.y)))
        a.sync()
        after = a.get_weights()
        want = {k for k in w if is_trainable(k, phase.trainable) and not k.startswith("imagenet.")}
        assert changed_keys(seen, after) == want, sorted(changed_keys(seen, after) ^ want)[:5]
        seen = after
    # BatchNorm scale/bias inside a fine-tuned block train; moving statistics and the aux head never do.
    assert {"blocks.15.project.bn.scale", "blocks.15.project.bn.bias"} <= changed_keys(w, seen)
    assert not any(k.endswith(BN_STATISTICS) or k.startswith("imagenet.") for k in changed_keys(w, seen))


def _backward_convs(fw: str, a, x: np.ndarray, y: np.ndarray) -> int:
    """Backward convolutions in the current phase's traced training step (traced, not run): TF's kernel
    gradients; for JAX every convolution beyond the forward pass (kernel and input gradients)."""
    if fw == "tf":
        import tensorflow as tf

        fn = a.step.get_concrete_function(tf.constant(x), tf.constant(y, tf.float32))
        return sum("BackpropFilter" in op.type for op in fn.graph.get_operations())
    hlo = a.step.lower(a.states, x, y).as_text()
    return hlo.count("stablehlo.convolution") - sum(len(conv_bns(layer)) for layer in CATS.layers)


@pytest.mark.parametrize("fw", [p for p in FW_PARAMS if p.values[0] != "torch"])
def test_frozen_layers_get_no_backward_pass(fw, photos):
    # Feature extraction runs the backbone forward only; fine-tuning adds a kernel gradient per
    # trainable ConvBN (and, in JAX's one graph, an input gradient for all but the lowest).
    # torch: tests/frameworks/test_flops_torch.py counts the backward FLOPs of each phase.
    a = built(fw, CATS, weights.init_weights(CATS, 0), phase=None)
    for i, phase in enumerate(CATS.phases):
        a.set_phase(i)
        n = sum(is_trainable(f"{c.name}.kernel", phase.trainable) for layer in CATS.layers for c in conv_bns(layer))
        want = (n if fw == "tf" else 2 * n - 1) if n else 0
        assert _backward_convs(fw, a, photos.x, photos.y) == want, phase.name


@pytest.mark.parametrize("task_name", list(TASKS))
@pytest.mark.parametrize("fw", FW_PARAMS)
def test_train_step_loss_is_the_task_loss_of_the_inference_logits(fw, task_name, photos):
    # Without dropout the training forward is the inference forward: the step's loss (before its
    # update) is the spec's loss type of predict()'s logits. Fails with another loss, or BatchNorm
    # on batch statistics in training.
    task = without_dropout(TASKS[task_name])
    x, y = (photos.x, photos.y) if task_name == "cats_vs_dogs" else batches(task, 1)[0]
    a = built(fw, task, weights.init_weights(task, 0), phase=len(task.phases) - 1)
    want, _ = metrics(task.loss, a.predict(x), y)
    assert float(a.train_step(x, y)) == pytest.approx(want, abs=2e-6)


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_dropout_acts_in_training_steps_only(fw):
    task = TASKS["mnist_mlp"]
    x, y = batches(task, 1)[0]
    a = built(fw, task, weights.init_weights(task, 0))
    logits = a.predict(x)
    assert np.array_equal(a.predict(x), logits)  # inference is deterministic
    # Without dropout the two agree within 2e-6 (the test above); with it they part by ~1e-3 at init.
    assert abs(float(a.train_step(x, y)) - metrics(task.loss, logits, y)[0]) > 1e-4


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_missing_gpu_is_device_unavailable_and_no_phase_no_step(fw):
    task = TASKS["mnist_mlp"]
    w = weights.init_weights(task, 0)
    with pytest.raises(DeviceUnavailable):
        load_adapter(fw).build(task, w, "gpu", 0)  # tests run with GPUs hidden (tests/conftest.py)
    a = built(fw, task, w, phase=None)
    with pytest.raises(RuntimeError, match="set_phase"):
        a.train_step(*batches(task, 1)[0])


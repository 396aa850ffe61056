"""impls/tf/transfer.py against the transfer spec: counts, exact weights, ImageNet, what trains per phase, loss."""
import collections
import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest

from bench import images, weights
from bench.vision import BACKBONES, CATS_VS_DOGS, conv_bns, is_trainable, model_param_counts
from tests.frameworks.helpers import changed_keys
from tests.conftest import needs

pytestmark = [pytest.mark.tf, needs("tf")]

BN_STATS = (".bn.mean", ".bn.var")


@pytest.fixture(scope="module")
def m():
    """One model for the module (building and tracing dominate); what must be seen untrained is captured here."""
    from bench.adapter import load_adapter

    task = dataclasses.replace(CATS_VS_DOGS, head_dropout=0.0)  # deterministic loss, see test_loss_*
    w = weights.init_weights(task, 0)
    adapter = load_adapter("tf", "transfer")
    adapter.build(task, w, "cpu", 0)
    x = images.normalize(np.stack([images.load_photo(images.sample_photo(n), task) for n in ("chelsea", "coffee")]),
                         task)
    return SimpleNamespace(task=task, w=w, adapter=adapter, x=x, y=np.array([0, 1], np.int32),
                           initial=adapter.get_weights(), imagenet=adapter.predict_imagenet(x),
                           count_before_phase=adapter.trainable_count())


def test_param_and_trainable_counts_match_the_spec(m):
    want = model_param_counts(m.task)
    assert m.adapter.param_count() == want["total"]
    assert m.count_before_phase == 0
    for i in (1, 0):  # back to phase 0 after 1: re-freezing must work too
        m.adapter.set_phase(i)
        assert m.adapter.trainable_count() == want[m.task.phases[i].name]


def test_weights_round_trip_bit_for_bit(m):
    assert m.initial.keys() == m.w.keys()
    for k, v in m.w.items():
        assert m.initial[k].dtype == np.float32 and m.initial[k].shape == v.shape, k
        assert np.array_equal(m.initial[k], v), k


def test_imagenet_classifier_recognises_the_sample_photos(m):
    assert m.imagenet.shape == (2, 1000) and m.imagenet.dtype == np.float32
    cat, coffee = images.SAMPLE_PHOTOS["chelsea"][1], images.SAMPLE_PHOTOS["coffee"][1]
    assert int(np.argmax(m.imagenet[0])) in cat
    assert set(np.argsort(-m.imagenet[1])[:5].tolist()) & set(coffee)


def _steps(m, phase: int, n: int = 2) -> tuple[dict, dict]:
    m.adapter.set_phase(phase)
    before = m.adapter.get_weights()
    for _ in range(n):
        loss = m.adapter.train_step(m.x, m.y)
    assert np.isfinite(float(loss))
    m.adapter.sync()
    return before, m.adapter.get_weights()



def _backprop_ops(m) -> collections.Counter:
    """Gradient ops of conv layers in the traced train step of the current phase."""
    import tensorflow as tf

    fn = m.adapter._step.get_concrete_function(tf.constant(m.x), tf.constant(m.y, tf.float32))
    return collections.Counter(op.type for op in fn.graph.get_operations() if "BackpropFilter" in op.type)


def test_phase_0_trains_only_the_new_head_without_backbone_backprop(m):
    before, after = _steps(m, 0)
    assert changed_keys(before, after) == {"top.kernel", "top.bias"}
    assert not _backprop_ops(m)  # the frozen backbone is only run forward


def test_phase_1_trains_exactly_the_spec_prefixes_and_never_bn_statistics(m):
    trainable = m.task.phases[1].trainable
    before, after = _steps(m, 1)
    changed = changed_keys(before, after)
    want = {k for k in before if is_trainable(k, trainable) and not k.startswith("imagenet.")}
    assert changed == want
    assert any(k.startswith("blocks.") for k in changed)
    # BatchNorm scale/bias inside a fine-tuned block train; its moving statistics never change.
    assert {"blocks.15.project.bn.scale", "blocks.15.project.bn.bias"} <= changed
    assert not any(k.endswith(BN_STATS) for k in changed)
    # Backward compute only for the fine-tuned convolutions, none for the frozen ones below.
    convs = [c for c in conv_bns(BACKBONES[m.task.backbone]) if is_trainable(f"{c.name}.kernel", trainable)]
    depthwise = sum(c.depthwise for c in convs)
    assert _backprop_ops(m) == {"Conv2DBackpropFilter": len(convs) - depthwise,
                                "DepthwiseConv2dNativeBackpropFilter": depthwise}


def test_loss_is_mean_sigmoid_bce_of_the_predicted_logit(m):
    m.adapter.set_phase(0)
    z = m.adapter.predict(m.x).astype(np.float64)
    assert z.shape == (2, 1)
    z = z[:, 0]
    want = np.mean(np.maximum(z, 0) - z * m.y + np.log1p(np.exp(-np.abs(z))))
    got = float(m.adapter.train_step(m.x, m.y))  # the loss before this step's update
    assert abs(got - want) < 1e-5


def test_head_dropout_is_active_in_train_step_only(m):
    from bench.adapter import load_adapter

    adapter = load_adapter("tf", "transfer")  # the spec's task, dropout 0.2
    adapter.build(CATS_VS_DOGS, m.w, "cpu", 0)
    adapter.set_phase(0)
    z = adapter.predict(m.x)[:, 0].astype(np.float64)
    assert np.array_equal(adapter.predict(m.x)[:, 0], z)  # inference is deterministic
    no_dropout = np.mean(np.maximum(z, 0) - z * m.y + np.log1p(np.exp(-np.abs(z))))
    assert abs(float(adapter.train_step(m.x, m.y)) - no_dropout) > 1e-4


def test_gpu_requested_without_gpu_is_device_unavailable():
    from bench.adapter import DeviceUnavailable, load_adapter

    with pytest.raises(DeviceUnavailable):
        load_adapter("tf", "transfer").build(CATS_VS_DOGS, {}, "gpu", 0)

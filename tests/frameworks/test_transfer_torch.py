"""impls/torch/transfer.py against the transfer spec: counts, layouts, ImageNet photos, phases, loss."""
import dataclasses

import numpy as np
import pytest

from bench import weights
from bench.adapter import DeviceUnavailable
from bench.images import SAMPLE_PHOTOS, load_photo, normalize, sample_photo
from bench.vision import CATS_VS_DOGS, is_trainable, model_param_counts, transfer_shapes
from tests.frameworks.helpers import bce, changed_keys
from tests.conftest import needs

pytestmark = [pytest.mark.torch, needs("torch")]

TASK = CATS_VS_DOGS


def _adapter(task=TASK, w=None):
    from impls.torch.transfer import Adapter  # imports torch: only once the skip marks have passed

    a = Adapter()
    a.build(task, w if w is not None else weights.init_weights(task, 0), "cpu", 0)
    return a


@pytest.fixture(scope="module")
def w():
    return weights.init_weights(TASK, 0)


@pytest.fixture(scope="module")
def built(w):
    """Built once; tests on it must not train (set_phase alone changes no weight)."""
    return _adapter(TASK, w)


@pytest.fixture(scope="module")
def photos():
    """chelsea, coffee and their mirror images: 4 real, normalised photos."""
    raw = np.stack([load_photo(sample_photo(n), TASK) for n in ("chelsea", "coffee")])
    x = normalize(np.concatenate([raw, raw[:, :, ::-1]]), TASK)
    return x, np.array([0, 1, 0, 1], np.int32)




def test_param_and_trainable_counts_follow_the_spec(built):
    counts = model_param_counts(TASK)
    assert built.param_count() == counts["total"]
    assert built.trainable_count() == 0  # no phase chosen yet
    for i, phase in enumerate(TASK.phases):
        built.set_phase(i)
        assert built.trainable_count() == counts[phase.name], phase.name
    assert counts[TASK.phases[0].name] < counts[TASK.phases[1].name] < counts["total"]


def test_weights_round_trip_bit_for_bit(built, w):
    back = built.get_weights()
    assert back.keys() == w.keys() == transfer_shapes(TASK).keys()
    for k in w:
        assert back[k].dtype == np.float32 and back[k].shape == w[k].shape, k
        assert np.array_equal(back[k], w[k]), k


def test_real_photos_get_their_imagenet_classes(built, photos):
    logits = built.predict_imagenet(photos[0][:2])
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert int(np.argmax(logits[0])) in SAMPLE_PHOTOS["chelsea"][1]
    assert set(np.argsort(-logits[1])[:5].tolist()) & set(SAMPLE_PHOTOS["coffee"][1])


def test_phases_change_exactly_their_trainable_weights(w, photos):
    x, y = photos
    a = _adapter(TASK, w)
    import torch

    # Phase 0: only the head trains, and dropout is active in train_step.
    a.set_phase(0)
    eval_loss = bce(a.predict(x), y)
    losses = [float(a.train_step(x, y)) for _ in range(2)]
    assert abs(losses[0] - eval_loss) > 1e-6, "dropout (rate 0.2) did not change the training logits"
    after0 = a.get_weights()
    assert changed_keys(w, after0) == {"top.kernel", "top.bias"}
    frozen_grads = [n for n, p in a.model.named_parameters() if not n.startswith("top.") and p.grad is not None]
    assert not frozen_grads, f"frozen parameters got gradients: {frozen_grads[:3]}"

    # Phase 1: the last blocks, head ConvBN and top train; BN statistics and imagenet.* never.
    a.set_phase(1)
    for _ in range(2):
        loss = a.train_step(x, y)
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0
    after1 = a.get_weights()
    trainable = {k for k in w if is_trainable(k, TASK.phases[1].trainable)}
    changed = changed_keys(after0, after1)
    assert changed == trainable, sorted(changed ^ trainable)[:5]
    assert any(k.startswith("blocks.") for k in changed)
    assert not any(k.endswith((".bn.mean", ".bn.var")) or k.startswith("imagenet.") for k in changed_keys(w, after1))


@pytest.mark.parametrize("phase", [0, 1])
def test_loss_is_mean_sigmoid_bce_of_the_inference_logits(photos, phase):
    # Without dropout, train mode must compute exactly the inference logits: this also fails if
    # BatchNorm used batch statistics in train_step.
    x, y = photos
    a = _adapter(dataclasses.replace(TASK, head_dropout=0.0))
    a.set_phase(phase)
    logits = a.predict(x)
    assert logits.shape == (4, 1) and logits.dtype == np.float32
    assert float(a.train_step(x, y)) == pytest.approx(bce(logits, y), abs=1e-5)


def test_gpu_requested_without_gpu_is_device_unavailable(w):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    from impls.torch.transfer import Adapter

    with pytest.raises(DeviceUnavailable):
        Adapter().build(TASK, w, "gpu", 0)

"""impls/jax/transfer.py against the transfer spec: counts, exact weights, ImageNet photos, phases, loss."""
import dataclasses

import numpy as np
import pytest

from bench import weights
from bench.adapter import DeviceUnavailable
from bench.images import SAMPLE_PHOTOS, load_photo, normalize, sample_photo
from bench.vision import BACKBONES, CATS_VS_DOGS, conv_bns, is_trainable, model_param_counts, transfer_shapes
from tests.frameworks.helpers import bce, changed_keys
from tests.conftest import needs

pytestmark = [pytest.mark.jax, needs("jax")]

TASK = CATS_VS_DOGS


def _adapter(task, w):
    from impls.jax.transfer import Adapter  # imports jax: only once the skip marks have passed

    a = Adapter()
    a.build(task, w, "cpu", 0)
    return a




@pytest.fixture(scope="module")
def w():
    return weights.init_weights(TASK, 0)


@pytest.fixture(scope="module")
def photos():
    """chelsea and coffee, normalised: the one batch shape of the module, so each function compiles once."""
    x = normalize(np.stack([load_photo(sample_photo(n), TASK) for n in ("chelsea", "coffee")]), TASK)
    return x, np.array([0, 1], np.int32)


@pytest.fixture(scope="module")
def trained(w):
    """The module's one model that compiles predict and both train steps (XLA:CPU compiles take seconds)."""
    return _adapter(TASK, w)


def test_counts_and_exact_weight_round_trip(w):
    # Build alone compiles nothing, so a private model keeps this independent of the training test.
    a = _adapter(TASK, w)
    back = a.get_weights()
    assert back.keys() == w.keys() == transfer_shapes(TASK).keys()
    for k in w:
        assert back[k].dtype == np.float32 and back[k].shape == w[k].shape, k
        assert np.array_equal(back[k], w[k]), k
    counts = model_param_counts(TASK)
    assert a.param_count() == counts["total"]
    assert a.trainable_count() == 0  # no phase chosen yet
    for i in (1, 0):  # back to phase 0 after 1: re-freezing must work too
        a.set_phase(i)
        assert a.trainable_count() == counts[TASK.phases[i].name], TASK.phases[i].name


def test_real_photos_get_their_imagenet_classes(trained, photos):
    logits = trained.predict_imagenet(photos[0])
    assert logits.shape == (2, 1000) and logits.dtype == np.float32
    assert int(np.argmax(logits[0])) in SAMPLE_PHOTOS["chelsea"][1]
    assert set(np.argsort(-logits[1])[:5].tolist()) & set(SAMPLE_PHOTOS["coffee"][1])


def test_phases_change_exactly_their_trainable_weights(trained, w, photos):
    import jax

    x, y = photos
    a = trained
    # Phase 0: only the head trains, and dropout is active in train_step only.
    a.set_phase(0)
    eval_loss = bce(a.predict(x), y)
    losses = [a.train_step(x, y) for _ in range(2)]
    assert isinstance(losses[0], jax.Array) and losses[0].shape == ()
    assert abs(float(losses[0]) - eval_loss) > 1e-6, "dropout (rate 0.2) did not change the training logits"
    a.sync()
    after0 = a.get_weights()
    assert changed_keys(w, after0) == {"top.kernel", "top.bias"}

    # Phase 1: the last blocks, head ConvBN and top train; BN statistics and imagenet.* never.
    a.set_phase(1)
    for _ in range(2):
        loss = a.train_step(x, y)
    assert np.isfinite(float(loss))
    after1 = a.get_weights()
    trainable = {k for k in w if is_trainable(k, TASK.phases[1].trainable)}
    changed = changed_keys(after0, after1)
    assert changed == trainable, sorted(changed ^ trainable)[:5]
    assert any(k.startswith("blocks.") for k in changed)
    assert not any(k.endswith((".bn.mean", ".bn.var")) or k.startswith("imagenet.") for k in changed_keys(w, after1))


def test_frozen_layers_get_no_backward_pass(w, photos):
    # Count convolutions in the traced train step (tracing only, no compile): phase 0 must be the
    # forward alone; phase 1 adds a kernel gradient per trainable ConvBN and an input gradient for
    # all of them but the first (nothing below it needs one).
    x, y = photos
    a = _adapter(TASK, w)
    convs = conv_bns(BACKBONES[TASK.backbone])
    for i, phase in enumerate(TASK.phases):
        a.set_phase(i)
        hlo = a._step.lower(a.states, x, y).as_text()
        n_train = sum(is_trainable(c.name, phase.trainable) for c in convs)
        want = len(convs) + (2 * n_train - 1 if n_train else 0)
        assert hlo.count("stablehlo.convolution") == want, phase.name


def test_loss_is_mean_sigmoid_bce_of_the_inference_logits(w, photos):
    # Without dropout, train mode must compute exactly the inference logits: this also fails if
    # BatchNorm used batch statistics in train_step.
    x, y = photos
    a = _adapter(dataclasses.replace(TASK, head_dropout=0.0), w)
    a.set_phase(0)
    logits = a.predict(x)
    assert logits.shape == (2, 1) and logits.dtype == np.float32
    assert float(a.train_step(x, y)) == pytest.approx(bce(logits, y), abs=1e-5)


def test_gpu_requested_without_gpu_is_device_unavailable(w):
    import jax

    from impls.jax.transfer import Adapter

    try:
        jax.devices("gpu")
        pytest.skip("a GPU is visible")
    except RuntimeError:
        pass
    with pytest.raises(DeviceUnavailable):
        Adapter().build(TASK, w, "gpu", 0)

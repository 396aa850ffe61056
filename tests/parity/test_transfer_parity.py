"""cats_vs_dogs across frameworks: the same converted ImageNet weights give the same logits on real photos
and the same fine-tuning steps."""
import itertools

import numpy as np
import pytest

from bench import weights
from bench.data.images import SAMPLE_PHOTOS, load_photo, sample_photo
from bench.harness.adapter import load_adapter
from bench.spec import TASKS
from tests.conftest import has
from tests.frameworks.helpers import without_dropout

AVAILABLE = [fw for fw in ("tf", "torch", "jax") if has(fw)]
pytestmark = [pytest.mark.parity,
              pytest.mark.skipif(len(AVAILABLE) < 2, reason="parity needs at least two frameworks installed")]

TASK = TASKS["cats_vs_dogs"]
# About 10x the measurements (max over pairs): logits 9.5e-6 through 60+ layers; 3 steps per phase,
# |Δ loss| 2.4e-7 and |update difference| / |update| 1.2e-5 (phase 0), 6.9e-5 (phase 1).
LOGIT_TOLERANCE = 1e-4
STEP_TOLERANCE = {"loss": 3e-6, "update": 1e-3}


@pytest.fixture(scope="module")
def photos() -> np.ndarray:
    """The real sample photos (a cat, a coffee cup) and their mirror images, normalised."""
    raw = np.stack([load_photo(sample_photo(n), TASK.input) for n in SAMPLE_PHOTOS])
    return TASK.input.normalize(np.concatenate([raw, raw[:, :, ::-1]]))


@pytest.fixture(scope="module")
def w() -> dict[str, np.ndarray]:
    return weights.for_verification(weights.init_weights(TASK, 0), 0)  # the new head's bias is not 0


def test_same_imagenet_logits_and_top5_on_real_photos(w, photos):
    logits, head, pooled = {}, {}, {}
    for fw in AVAILABLE:
        a = load_adapter(fw)
        a.build(TASK, w, "cpu", 0)
        logits[fw] = a.predict_aux(photos).astype(np.float64)
        head[fw] = a.predict(photos).astype(np.float64)
        pooled[fw] = a.predict_features(photos).astype(np.float64)  # what the frozen-features baseline reads
    pairs = list(itertools.combinations(AVAILABLE, 2))
    gap = max(float(np.abs(v[a] - v[b]).max()) for a, b in pairs for v in (logits, head, pooled))
    print(f"cats_vs_dogs: max |Δ| {gap:.1e} (ImageNet logits, new head, pooled features)")
    assert gap <= LOGIT_TOLERANCE
    # The pooled features feed the ImageNet head: its logits from them are the framework's own.
    aux = {k: v for k, v in w.items() if k.startswith("imagenet.")}
    assert pooled[AVAILABLE[0]].shape == (len(photos), aux["imagenet.kernel"].shape[0])
    again = pooled[AVAILABLE[0]] @ aux["imagenet.kernel"].astype(np.float64) + aux["imagenet.bias"]
    assert np.abs(again - logits[AVAILABLE[0]]).max() < 1e-3
    for a, b in pairs:
        for i in range(len(photos)):
            assert set(np.argsort(-logits[a][i])[:5]) == set(np.argsort(-logits[b][i])[:5]), (a, b, i)
    # Identical but meaningless logits would pass the comparison: the cat must be a cat class.
    cat_classes = SAMPLE_PHOTOS["chelsea"][1]
    assert int(np.argmax(logits[AVAILABLE[0]][0])) in cat_classes
    assert np.std(head[AVAILABLE[0]]) > 1e-3


@pytest.mark.parametrize("phase", [0, 1])
def test_training_steps_agree_in_each_phase(w, photos, phase):
    """Without dropout (whose masks come from each framework's own RNG) the same batches give the
    same losses and the same updated weights: frozen layers, inference-mode BatchNorm and Adam."""
    task = without_dropout(TASK)
    y = np.array([0, 1, 0, 1], np.int32)
    steps = [(photos, y), (photos[::-1].copy(), y[::-1].copy()), (photos, y)]
    losses, final = {}, {}
    for fw in AVAILABLE:
        a = load_adapter(fw)
        a.build(task, w, "cpu", 0)
        a.set_phase(phase)
        losses[fw] = [float(a.train_step(x, t)) for x, t in steps]
        final[fw] = a.get_weights()
    ref = AVAILABLE[0]
    moved = {k for k in w if not np.array_equal(final[ref][k], w[k])}
    assert "top.kernel" in moved and (phase == 0) == (len(moved) == 2), sorted(moved)[:5]
    loss_gap = update_gap = 0.0
    for a, b in itertools.combinations(AVAILABLE, 2):
        assert {k for k in w if not np.array_equal(final[b][k], w[k])} == moved, (a, b)
        loss_gap = max(loss_gap, float(np.abs(np.subtract(losses[a], losses[b])).max()))
        for k in moved:
            # Compare the updates as a whole: Adam divides by |g|, so a single weight whose gradient
            # is ~0 (a ReLU6 kink; its sign set by float32 rounding) can differ by up to 2 * lr
            # per step, while a wrong rule, frozen set or BatchNorm mode changes every update.
            upd = final[a][k].astype(np.float64) - w[k]
            update_gap = max(update_gap, float(np.linalg.norm(final[a][k].astype(np.float64) - final[b][k])
                                               / np.linalg.norm(upd)))
    print(f"cats_vs_dogs phase {phase}, 3 steps: max |Δ loss| {loss_gap:.1e}, max update gap {update_gap:.1e}")
    assert loss_gap <= STEP_TOLERANCE["loss"] and update_gap <= STEP_TOLERANCE["update"]

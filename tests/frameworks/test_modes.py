"""--mode and --precision in each adapter: eager = compiled, bf16 really bf16 with float32 logits, JAX eager skipped."""
import json

import numpy as np
import pytest

from bench import weights
from bench.harness.adapter import NotApplicable, load_adapter
from bench.harness.cell import Cell
from bench.harness.worker import classify
from bench.harness.worker import main as worker_main
from bench.spec import TASKS
from bench.spec.modes import JAX_EAGER
from tests.conftest import FW_PARAMS, has, needs
from tests.frameworks.helpers import batches, built, without_dropout

# The MLP without dropout (compiled dropout draws its own masks), 4 real batches, the same weights.
TASK = without_dropout(TASKS["mnist_mlp"])
STEPS = 4
# Eager vs compiled, measured on this CPU after 4 RMSprop steps: |Δ loss| <= 2.4e-7 and |Δ weight| <= 2.2e-8
# (torch.compile 2.4e-7 / 1.5e-8, Keras XLA 1.2e-7 / 2.2e-8): float32 rounding of fused kernels.
LOSS_TOL, WEIGHT_TOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def setup():
    return weights.init_weights(TASK, 1), batches(TASK, STEPS)


def _train(fw, w, steps, **kw):
    a = built(fw, TASK, w, **kw)
    losses = [float(a.train_step(x, y)) for x, y in steps]
    a.sync()
    return a, losses, a.get_weights()


@pytest.mark.parametrize("fw", [p for p in FW_PARAMS if p.values[0] != "jax"])
def test_eager_and_compiled_train_to_the_same_numbers(fw, setup):
    w, steps = setup
    eager, l_eager, w_eager = _train(fw, w, steps, mode="eager")
    compiled, l_comp, w_comp = _train(fw, w, steps, mode="compiled")
    assert eager.settings()["mode"] != compiled.settings()["mode"]
    assert ("torch.compile" if fw == "torch" else "jit_compile=True") in compiled.settings()["mode"]
    assert l_eager[-1] < l_eager[0] - 0.3  # it trained: 2.32 -> 1.52 in 4 steps
    assert max(abs(a - b) for a, b in zip(l_eager, l_comp)) < LOSS_TOL, (l_eager, l_comp)
    assert max(float(np.abs(w_eager[k] - w_comp[k]).max()) for k in w) < WEIGHT_TOL


def _dtype(value) -> str:
    """'float32' for a torch, TF or JAX array (torch dtypes have no .name)."""
    name = getattr(value.dtype, "name", None)
    return name if isinstance(name, str) else str(value.dtype).split(".")[-1]


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_bf16_trains_with_float32_weights_logits_and_loss(fw, setup):
    w, steps = setup
    x = steps[0][0]
    fp32, bf16 = built(fw, TASK, w), built(fw, TASK, w, precision="bf16")
    assert "bfloat16" in bf16.settings()["precision"] and "bfloat16" not in fp32.settings()["precision"]
    raw = bf16.logits(x)
    assert _dtype(raw) == "float32", _dtype(raw)
    a, b = fp32.predict(x), np.asarray(raw, np.float32)
    # Same weights, same batch: bf16 rounding (8-bit mantissa, relative 2^-8) moves the logits a
    # little, but not nothing: that difference is the proof that bf16 arithmetic ran.
    diff = float(np.abs(a - b).max())
    assert 1e-4 < diff < 0.05 * float(np.abs(a).max()), diff
    losses = [bf16.train_step(xb, yb) for xb, yb in steps]
    assert all(_dtype(v) == "float32" for v in losses), _dtype(losses[0])
    values = [float(v) for v in losses]
    assert np.isfinite(values).all() and values[-1] < values[0] - 0.3, values
    trained = bf16.get_weights()
    assert all(v.dtype == np.float32 for v in trained.values())  # float32 master weights
    assert any(not np.array_equal(trained[k], w[k]) for k in w)


@pytest.mark.jax
@needs("jax")
def test_jax_eager_is_a_skipped_cell_with_its_reason_never_a_faked_run(tmp_path):
    with pytest.raises(NotApplicable, match="not applicable"):
        load_adapter("jax").build(TASK, weights.init_weights(TASK, 0), "cpu", 0, mode="eager")
    assert classify(NotApplicable(JAX_EAGER), "jax") == ("skipped", JAX_EAGER)
    # The whole worker, as the runner starts it: a result file saying skipped, with the reason.
    path, _ = weights.materialize(TASKS["mnist_mlp"], 0, tmp_path)
    cell = Cell(task="mnist_mlp", framework="jax", device="cpu", profile="smoke", dataset="mnist", seed=0,
                epochs=1, data_root=str(tmp_path), weights_path=str(path), mode="eager")
    (tmp_path / "cell.json").write_text(json.dumps(cell.__dict__))
    assert worker_main([str(tmp_path / "cell.json"), str(tmp_path / "result.json")]) == 0
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["status"] == "skipped" and result["error"] == JAX_EAGER
    assert "test_accuracy" not in result and "train_time_s" not in result


@pytest.mark.skipif(not has("torch"), reason="torch is not installed")
@pytest.mark.torch
def test_bad_mode_or_precision_in_an_adapter_is_refused():
    a = load_adapter("torch")
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        a.build(TASK, weights.init_weights(TASK, 0), "cpu", 0, mode="fast")
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        a.build(TASK, weights.init_weights(TASK, 0), "cpu", 0, precision="fp16")

"""After training: the inference path, and saving and reloading in every native format and the neutral .npz
(bench/harness/inference.py), in each framework, for a plain and a BatchNorm/aux-head model."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from bench import weights
from bench.harness import inference
from bench.harness.cell import Cell
from bench.spec import TASKS
from bench.spec.protocol import INFERENCE
from tests.conftest import FW_PARAMS, needs
from tests.frameworks.helpers import batches, built, smoke_data

NATIVE = {"tf": ("keras",), "torch": ("state_dict", "export"), "jax": ("msgpack",)}


def _cell(fw: str, task: str) -> Cell:
    return Cell(task=task, framework=fw, device="cpu", profile="smoke", dataset=TASKS[task].datasets[0], seed=3,
                epochs=1, data_root="", weights_path="")


def _trained(fw: str, task_name: str, steps: int = 2):
    """An adapter a few steps into training, so the saved weights are not the initial file's."""
    task = TASKS[task_name]
    a = built(fw, task, weights.init_weights(task, 3))
    for x, y in batches(task, steps):
        a.train_step(x, y)
    a.sync()
    return a


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_every_format_reloads_to_the_same_logits_bit_for_bit(fw):
    a = _trained(fw, "mnist_cnn")
    x = smoke_data("mnist_cnn").test.x[:64]
    saved = inference.persist(a, TASKS["mnist_cnn"], _cell(fw, "mnist_cnn"), x)
    assert list(saved) == [*NATIVE[fw], "npz"]
    params_bytes = 4 * a.param_count()
    for fmt, s in saved.items():
        assert "error" not in s, (fmt, s)
        assert s["equal"] is True and s["max_abs_diff"] == 0.0, fmt
        # every float32 parameter is in the file, and not many times over
        assert params_bytes <= s["bytes"] < 3 * params_bytes, (fmt, s["bytes"], params_bytes)
        assert s["save_s"] > 0 and s["load_s"] > 0


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_batchnorm_statistics_and_the_aux_head_survive_the_round_trip(fw):
    task = TASKS["cats_vs_dogs"]
    w = weights.for_verification(weights.init_weights(task, 4), 4)  # no zero bias or unit statistic to hide a loss
    a = built(fw, task, w)
    x = np.random.default_rng(0).normal(size=(2, *task.input_shape)).astype(np.float32)
    saved = inference.persist(a, task, _cell(fw, "cats_vs_dogs"), x)
    assert all(s.get("equal") is True for s in saved.values()), saved


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_damaged_file_is_an_error_for_that_format_and_the_others_still_run(fw, monkeypatch):
    a = _trained(fw, "mnist_mlp", steps=1)
    save = a.save

    def save_then_truncate(fmt: str, folder: Path) -> None:
        save(fmt, folder)
        for f in folder.rglob("*"):
            if f.is_file():
                f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

    monkeypatch.setattr(a, "save", save_then_truncate)
    saved = inference.persist(a, TASKS["mnist_mlp"], _cell(fw, "mnist_mlp"), smoke_data().test.x[:8])
    for fmt in NATIVE[fw]:
        assert set(saved[fmt]) == {"error"} and saved[fmt]["error"], (fmt, saved[fmt])
    assert saved["npz"]["equal"] is True


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_the_inference_path_predicts_what_evaluation_predicts(fw):
    a = _trained(fw, "mnist_mlp", steps=1)
    x = smoke_data().test.x[:32]
    np.testing.assert_array_equal(a.inference()(x), a.predict(x))


def test_latency_calls_batch_one_then_the_evaluation_batch_as_the_protocol_says():
    shapes: list[int] = []

    def predict(x: np.ndarray) -> np.ndarray:
        shapes.append(len(x))
        return np.zeros((len(x), 10), np.float32)

    got = inference.latency(predict, np.zeros((1000, 28, 28, 1), np.float32))
    ones = INFERENCE.latency_warmup + INFERENCE.latency_calls
    assert shapes == [1] * ones + [1000] * (INFERENCE.throughput_warmup + INFERENCE.throughput_calls)
    assert got["latency_calls"] == INFERENCE.latency_calls >= 200 and got["predict_batch"] == 1000
    assert 0 < got["latency_b1_s"] <= got["latency_b1_p99_s"] and got["predict_samples_per_s"] > 0


class _Marker:
    """A pickle that would create a file when unpickled: loading it must not run it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.torch
@needs("torch")
def test_torch_loading_never_runs_code_from_the_file(tmp_path):
    import torch

    a = _trained("torch", "mnist_mlp", steps=1)
    ran = tmp_path / "code-ran"
    (tmp_path / "model.pt").write_bytes(pickle.dumps({"x": _Marker(ran)}))
    with pytest.raises(pickle.UnpicklingError):
        a.load("state_dict", tmp_path)
    assert not ran.exists()
    torch.save({"x": _Marker(ran)}, tmp_path / "model.pt")  # the same through torch's own writer
    with pytest.raises(pickle.UnpicklingError):
        a.load("state_dict", tmp_path)
    assert not ran.exists()


@pytest.mark.tf
@needs("tf")
def test_keras_loading_refuses_code_in_the_file(tmp_path):
    import keras

    a = _trained("tf", "mnist_mlp", steps=1)
    inputs = keras.Input((28, 28, 1))
    keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs)).save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        a.load("keras", tmp_path)

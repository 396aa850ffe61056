"""What the harness's clock relies on in each framework: sync() really waits, and the GPU pins hold.

The GPU branches (CUDA synchronize, TF32 off) are exercised on CPU through the calls they make, so a
pin that silently stopped being set fails here, not only on a GPU machine.
"""
import numpy as np
import pytest

from bench import weights
from bench.harness.adapter import load_adapter
from bench.spec import TASKS
from tests.conftest import needs
from tests.frameworks.helpers import built, smoke_data

CNN = TASKS["mnist_cnn"]


def big_batch(n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """n real digits: a CNN step on them takes long enough (~0.3 s in JAX on CPU) to be caught unfinished."""
    td = smoke_data("mnist_cnn")
    idx = np.arange(n) % len(td.train)
    return np.ascontiguousarray(td.train.x[idx]), td.train.y[idx]


def all_ready(tree) -> bool:
    import jax

    leaves = jax.tree.leaves(tree)
    # Typed PRNG keys (the dropout stream) answer through their raw key data.
    arrays = [jax.random.key_data(v) if jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key) else v for v in leaves]
    return bool(arrays) and all(v.is_ready() for v in arrays)


@pytest.mark.jax
@needs("jax")
def test_jax_sync_leaves_every_output_of_the_last_step_ready():

    a = built("jax", CNN, weights.init_weights(CNN, 0))
    x, y = big_batch()
    a.train_step(x, y)  # compiles
    a.sync()
    loss = a.train_step(x, y)  # dispatched: returns before the work is done
    a.sync()
    assert all_ready(a.states) and loss.is_ready()
    # The premise: without sync() the state is still being computed right after dispatch.
    a.train_step(x, y)
    pending = not all_ready(a.states)
    a.sync()
    assert pending, "the step finished before sync(): make the batch larger so this test can fail"


@pytest.mark.torch
@needs("torch")
def test_torch_pins_fp32_and_synchronizes_cuda_on_a_gpu_build(monkeypatch):
    import torch

    from impls.torch import adapter as ta

    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: calls.append("sync"))
    before = (torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision)
    try:
        torch.backends.cuda.matmul.fp32_precision = torch.backends.cudnn.conv.fp32_precision = "tf32"
        assert ta.select_device("gpu").type == "cuda"
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.conv.fp32_precision = before
    adapter = ta.Adapter()
    adapter.device = torch.device("cuda")
    adapter.sync()
    assert calls == ["sync"]


@pytest.mark.tf
@needs("tf")
def test_tf_turns_tf32_off_and_syncs_devices_on_gpu(monkeypatch):
    import tensorflow as tf

    a = load_adapter("tf")
    a.build(TASKS["mnist_mlp"], weights.init_weights(TASKS["mnist_mlp"], 0), "cpu", 0)
    assert tf.config.experimental.tensor_float_32_execution_enabled() is False
    calls = []
    monkeypatch.setattr(tf.test.experimental, "sync_devices", lambda: calls.append("sync"))
    a.sync()
    assert calls == []  # on CPU nothing runs ahead of the host
    a.on_gpu = True
    a.sync()
    assert calls == ["sync"]


@pytest.mark.jax
@needs("jax")
def test_jax_pins_the_highest_matmul_precision():
    import jax

    a = load_adapter("jax")
    jax.config.update("jax_default_matmul_precision", None)
    a.build(TASKS["mnist_mlp"], weights.init_weights(TASKS["mnist_mlp"], 0), "cpu", 0)
    assert jax.config.jax_default_matmul_precision == "highest"

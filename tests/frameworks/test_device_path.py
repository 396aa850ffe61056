"""The GPU-grade input and measurement calls of the adapter contract, in every framework on CPU: the
device-resident path trains exactly as the host path, a prefetched device batch as a host one, completion
tokens, memory counters and the fp32 matmul of the TF32 check."""
from __future__ import annotations

import threading

import numpy as np
import pytest

from bench import data, weights
from bench.spec import TASKS
from tests.conftest import FW_PARAMS
from tests.frameworks.helpers import built, smoke_data

STEPS = 6


def host_run(fw: str, task_name: str, order: np.ndarray) -> tuple[list[float], dict[str, np.ndarray]]:
    task = TASKS[task_name]
    td = smoke_data(task_name)
    adapter = built(fw, task, weights.init_weights(task, 0))
    bs = task.batch_size
    losses = [float(adapter.train_step(td.train.x[order[i * bs:(i + 1) * bs]], td.train.y[order[i * bs:(i + 1) * bs]]))
              for i in range(STEPS)]
    return losses, adapter.get_weights()


@pytest.mark.parametrize("task_name", ["mnist_mlp", "mnist_cnn"])
@pytest.mark.parametrize("fw", FW_PARAMS)
def test_the_device_resident_path_trains_exactly_as_the_host_path(fw, task_name):
    """Dropout on (the real task): the same batches, so the same losses and weights, bit for bit."""
    task = TASKS[task_name]
    td = smoke_data(task_name)
    order = data.batches.epoch_order(0, 0, len(td.train))
    want_losses, want = host_run(fw, task_name, order)
    adapter = built(fw, task, weights.init_weights(task, 0))
    adapter.put_train(td.train.x, td.train.y)
    adapter.set_order(order)
    got_losses = [float(adapter.train_step_at(i)) for i in range(STEPS)]
    got = adapter.get_weights()
    assert got_losses == want_losses
    assert all(np.array_equal(got[k], want[k]) for k in want), [k for k in want if not np.array_equal(got[k], want[k])]


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_new_order_each_epoch_is_used(fw):
    """set_order replaces the order: a second epoch's first batch is that order's, not the first's."""
    task = TASKS["mnist_mlp"]
    td = smoke_data("mnist_mlp")
    first, second = data.batches.epoch_order(0, 0, len(td.train)), data.batches.epoch_order(0, 1, len(td.train))
    adapter = built(fw, task, weights.init_weights(task, 0))
    adapter.put_train(td.train.x, td.train.y)
    adapter.set_order(first)
    adapter.set_order(second)
    got = adapter.predict(td.train.x[:4])  # untouched by set_order
    loss = float(adapter.train_step_at(0))
    ref = built(fw, task, weights.init_weights(task, 0))
    bs = task.batch_size
    assert np.array_equal(ref.predict(td.train.x[:4]), got)
    assert loss == float(ref.train_step(td.train.x[second[:bs]], td.train.y[second[:bs]]))


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_batch_copied_to_the_device_on_another_thread_trains_as_the_host_batch(fw):
    task = TASKS["mnist_cnn"]
    host = list(data.train_batches(task, smoke_data("mnist_cnn").train, 0, 0))[:3]
    moved: list = []
    a = built(fw, task, weights.init_weights(task, 0))
    copier = threading.Thread(target=lambda: moved.extend(a.to_device(x, y) for x, y in host))
    copier.start()
    copier.join()
    got = [float(a.train_step(x, y)) for x, y in moved]
    # Built after a's steps: torch's dropout RNG is the process's, seeded by build (one adapter per worker).
    b = built(fw, task, weights.init_weights(task, 0))
    assert got == [float(b.train_step(x, y)) for x, y in host]


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_completion_token_waits_for_its_step_on_another_thread(fw):
    task = TASKS["mnist_mlp"]
    (x, y), = list(data.train_batches(task, smoke_data().train, 0, 0))[:1]
    adapter = built(fw, task, weights.init_weights(task, 0))
    out = adapter.train_step(x, y)
    token = adapter.mark(out)
    waiter = threading.Thread(target=adapter.wait, args=(token,))
    waiter.start()
    waiter.join(timeout=60)
    assert not waiter.is_alive()
    assert np.isfinite(float(out))


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_cpu_cells_have_no_device_memory_and_fp32_matmuls_are_fp32(fw):
    task = TASKS["mnist_mlp"]
    adapter = built(fw, task, weights.init_weights(task, 0))
    adapter.reset_device_peak()
    assert adapter.device_memory() == {"peak_bytes": None, "in_use_bytes": None, "reserved_bytes": None}
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((64, 256), np.float32), rng.standard_normal((256, 32), np.float32)
    got = adapter.matmul_fp32(a, b)
    assert got.dtype == np.float32 and got.shape == (64, 32)
    np.testing.assert_allclose(got, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-4, atol=1e-4)

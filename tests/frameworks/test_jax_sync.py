"""JAX's sync() blocks on the last step's loss alone: the evidence that this waits for the whole state,
and that the device-resident step compiles once for every batch index."""
from __future__ import annotations

import pytest

from bench import data, weights
from bench.spec import TASKS
from tests.frameworks.helpers import built, smoke_data

jax = pytest.importorskip("jax")
STEPS = 6


def leaves(tree: object) -> list:
    """The state's device arrays; a PRNG key's readiness is that of its raw data (the same buffer)."""
    return [jax.random.key_data(leaf) if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key) else leaf
            for leaf in jax.tree.leaves(tree)]


def test_blocking_on_the_last_loss_leaves_every_state_leaf_ready():
    """One executable's outputs share one PJRT definition event: once the loss is ready, so is each
    parameter, BatchNorm statistic, optimizer slot and dropout key, after every step of the CNN."""
    task = TASKS["mnist_cnn"]
    td = smoke_data("mnist_cnn")
    adapter = built("jax", task, weights.init_weights(task, 0))
    adapter.put_train(td.train.x, td.train.y)
    adapter.set_order(data.batches.epoch_order(0, 0, len(td.train)))
    host = list(data.train_batches(task, td.train, 0, 0))[:STEPS]
    in_flight = 0
    for i, (x, y) in enumerate(host):
        loss = adapter.train_step(x, y) if i % 2 else adapter.train_step_at(i)
        # Only the loss is queried early: an array asked while pending caches a future that resolves
        # through a later callback (~10 ms on CPU), so an early-queried leaf would lag without pending work.
        in_flight += not loss.is_ready()
        loss.block_until_ready()
        assert all(leaf.is_ready() for leaf in leaves(adapter.states)), f"step {i}: a leaf is still pending"
    # Had every step finished before we looked, the check above would prove nothing.
    assert in_flight > 0


def test_sync_blocks_on_the_last_loss_and_falls_back_to_the_state():
    task = TASKS["mnist_mlp"]
    adapter = built("jax", task, weights.init_weights(task, 0))
    adapter.sync()  # no step yet: the whole state
    (x, y), = list(data.train_batches(task, smoke_data().train, 0, 0))[:1]
    loss = adapter.train_step(x, y)
    adapter.sync()
    assert loss.is_ready() and all(leaf.is_ready() for leaf in leaves(adapter.states))


def test_the_resident_step_compiles_once_for_every_batch_index():
    task = TASKS["mnist_mlp"]
    td = smoke_data()
    adapter = built("jax", task, weights.init_weights(task, 0))
    adapter.put_train(td.train.x, td.train.y)
    adapter.set_order(data.batches.epoch_order(0, 0, len(td.train)))
    for i in range(4):
        adapter.train_step_at(i)
    assert adapter.step_at._cache_size() == 1


def test_data_parallel_builds_refuse_the_resident_path():
    task = TASKS["mnist_mlp"]
    adapter = built("jax", task, weights.init_weights(task, 0))
    adapter.mesh = object()  # as a data-parallel build sets it
    with pytest.raises(NotImplementedError, match="single-device"):
        adapter.put_train(smoke_data().train.x, smoke_data().train.y)

"""Data-parallel TensorFlow/Keras: tf.distribute.MirroredStrategy over N devices of one kind, in one process.

The model and optimizer variables are MirroredVariables (one copy per device, updated in lockstep). A step
splits the global batch into N equal row blocks (replica r takes rows [r*b, (r+1)*b)), runs the
single-device step body on each, and Keras' optimizer SUM-all-reduces the gradients before its update
(keras/src/backend/tensorflow/optimizer.py). Each replica's loss is the sum of its per-example losses
divided by the global batch (TF's custom-training-loop rule): the summed gradient is the global-batch mean
gradient, and the SUM of the replicas' losses is the global mean loss.
"""
from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import keras
import tensorflow as tf

from bench.harness.adapter import NotApplicable

Step = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]
Loss = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

CPU_XLA = ("XLA cannot compile a MirroredStrategy step over logical CPU devices (an XLA:CPU step cannot read "
           "the variable copies on the other logical CPUs): data-parallel TF on the CPU runs in --mode eager")


def mirrored(device: str, n: int, jit: bool) -> tuple[tf.distribute.MirroredStrategy, str]:
    """The strategy over the first n devices of the kind (select_device made them exist), and its
    description for the record's "launcher"."""
    if device == "cpu":
        if jit:
            raise NotApplicable(CPU_XLA)
        # NCCL has no CPU kernels: reduce onto CPU:0 and broadcast back.
        ops: tf.distribute.CrossDeviceOps | None = tf.distribute.ReductionToOneDevice(reduce_to_device="/cpu:0")
        names, how = [f"/cpu:{i}" for i in range(n)], f"{n} logical CPU devices (ReductionToOneDevice)"
    else:
        # Inside an XLA replica step MirroredStrategy all-reduces with its collective ops (NCCL on GPUs)
        # whatever it was given: name NCCL only where it is what runs.
        ops = None if jit else tf.distribute.NcclAllReduce()
        names = [f"/gpu:{i}" for i in range(n)]
        how = (f"{n} GPUs, XLA-compiled replica step (collective all-reduce)" if jit
               else f"{n} GPUs (NcclAllReduce)")
    strategy = tf.distribute.MirroredStrategy(names, cross_device_ops=ops)
    return strategy, f"tf.distribute.MirroredStrategy over {how}, one process"


def own_dropout_streams(model: keras.Model) -> None:
    """Keras' dropout seed states are MirroredVariables: every replica would draw the same masks for its
    rows. Replica r's copy starts at seed + r instead; each replica then advances its own copy."""
    for v in model.variables:
        if v.path.endswith("seed_generator_state"):
            for r, local in enumerate(v.value.values):
                local.assign_add(tf.constant([r, 0], local.dtype))


def replica_loss(per_example: Loss) -> Loss:
    """(labels, logits) -> this replica's share of the global-batch mean loss: its per-example losses summed,
    over the global batch (its rows times the replica count)."""
    return lambda y, logits: tf.nn.compute_average_loss(per_example(y, logits))


def distributed_step(strategy: tf.distribute.Strategy, replica_step: Step, jit: bool) -> Step:
    """step(x, y) on the global batch -> the global mean loss; replica_step must return its scaled loss.
    jit compiles the replica step alone with XLA (the variables of each replica stay on its own device)."""
    n = strategy.num_replicas_in_sync
    run = tf.function(replica_step, jit_compile=True) if jit else replica_step

    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        rows = x.shape[0] // n  # static: each batch shape is its own trace
        if rows * n != x.shape[0]:
            raise ValueError(f"a batch of {x.shape[0]} does not split into {n} equal per-device batches")

        def block(t: tf.Tensor) -> tf.distribute.DistributedValues:
            return strategy.experimental_distribute_values_from_function(
                lambda ctx: t[ctx.replica_id_in_sync_group * rows:(ctx.replica_id_in_sync_group + 1) * rows])

        losses = strategy.run(run, args=(block(x), block(y)))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, losses, axis=None)

    return step

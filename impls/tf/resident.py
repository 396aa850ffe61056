"""Device-resident input for a one-device TensorFlow build (docs/protocol.md): the training split and each
epoch's order copied to the device once, every batch gathered there by a tf.function of the step."""
from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import numpy as np
import tensorflow as tf

Step = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

DATA_PARALLEL = ("device-resident input is for one-device TF cells: a MirroredStrategy build (devices > 1) "
                 "takes host batches through train_step")


def copy_batch(device: str, x: np.ndarray, y: np.ndarray, label_dtype: tf.DType) -> tuple[tf.Tensor, tf.Tensor]:
    """x (its dtype kept) and y (as the labels' dtype) on `device`: tf.constant is a host tensor,
    tf.identity under the device scope is its copy there."""
    with tf.device(device):
        return tf.identity(tf.constant(x)), tf.identity(tf.constant(y, label_dtype))


def copy_order(device: str, order: np.ndarray) -> tf.Tensor:
    """An epoch's row indices on `device`, as int64 (a GPU kernel's index type, kept in device memory)."""
    with tf.device(device):
        return tf.identity(tf.constant(order, tf.int64))


def gathered(step: Step, batch: int) -> Callable[[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]:
    """step_at(x, y, order, i) = step(x[order[i*batch:(i+1)*batch]], y[...]); i a scalar int32 tensor, so
    one trace serves every batch, and a static slice size keeps the batch shape the host step sees."""
    def step_at(x: tf.Tensor, y: tf.Tensor, order: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        rows = tf.slice(order, [i * batch], [batch])
        return step(tf.gather(x, rows), tf.gather(y, rows))

    return step_at

"""A bare TensorFlow loop over an adapter's own tf.function step: the harness-overhead baseline."""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import tensorflow as tf


def prepare(adapter: Any, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[tf.Tensor, tf.Tensor]]:
    """The batches as tensors on the adapter's device, once, before any timing (the ideal loop's input)."""
    return [feed(adapter, x, y) for x, y in batches]


def feed(adapter: Any, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """One NumPy batch as tensors on the adapter's device, as a hand-written loop does."""
    with tf.device(adapter.tf_device):
        return tf.constant(x), tf.constant(y, adapter.label_dtype)


def train(adapter: Any, prepared: Iterable[tuple[Any, Any]]) -> tf.Tensor:
    """The phase's step function called per batch under one device scope; returns the last loss, synced."""
    step = adapter.step
    with tf.device(adapter.tf_device):
        for x, y in prepared:
            loss = step(x, y)
    if adapter.on_gpu:
        tf.test.experimental.sync_devices()
    return loss

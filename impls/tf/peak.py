"""TensorFlow side of the matmul peak microbenchmark: times back-to-back square matmuls on a device."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import numpy as np
import tensorflow as tf


def matmul_timer(n: int, dtype: str, device: str) -> Callable[[int], float]:
    """A function count -> seconds for `count` (n x n) @ (n x n) products, synced before and after."""
    on_gpu = device == "gpu"
    tf_device = "/GPU:0" if on_gpu else "/CPU:0"
    tf.config.experimental.enable_tensor_float_32_execution(False)  # fp32 means fp32: no TF32
    rng = np.random.default_rng(0)
    with tf.device(tf_device):
        a, b = (tf.cast(tf.constant(rng.standard_normal((n, n), np.float32)), dtype) for _ in range(2))

    def sync() -> None:
        if on_gpu:
            tf.test.experimental.sync_devices()

    def run(count: int) -> float:
        sync()
        start = time.perf_counter()
        with tf.device(tf_device):
            for _ in range(count):
                c = tf.linalg.matmul(a, b)
        sync()
        del c
        return time.perf_counter() - start

    return run

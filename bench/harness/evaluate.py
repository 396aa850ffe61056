"""Loss and accuracy of a split from the adapter's logits, in NumPy float64: the same code for every framework."""
from __future__ import annotations

from typing import Any

import numpy as np

from bench.data import Split, eval_batches
from bench.spec import LossType, TaskSpec


def metrics(loss: LossType, logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(mean loss, accuracy) of logits against integer labels, for the task's loss type."""
    z = logits.astype(np.float64)
    if loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY:
        z = z.reshape(-1)
        losses = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))  # the stable form
        return float(losses.mean()), float(((z > 0).astype(np.int32) == y).mean())
    shifted = z - z.max(axis=1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean()), float((z.argmax(axis=1) == y).mean())


def evaluate(adapter: Any, task: TaskSpec, split: Split) -> tuple[float, float]:
    """The task's loss and accuracy on a split, in inference mode, in fixed-size (padded) batches."""
    logits = np.concatenate([adapter.predict(x)[:n] for x, n in eval_batches(task, split)])
    return metrics(task.loss, logits, split.y)

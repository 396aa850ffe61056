"""Helpers for in-process adapter tests: deterministic task variants and real smoke batches."""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np

from bench import data
from bench.spec import PROFILES, TASKS, Dropout, TaskSpec


def without_dropout(task: TaskSpec) -> TaskSpec:
    """The same task with every dropout rate 0: training becomes deterministic and comparable."""
    layers = tuple(Dropout(0.0) if isinstance(layer, Dropout) else layer for layer in task.layers)
    return dataclasses.replace(task, layers=layers)


def smooth(task: TaskSpec) -> TaskSpec:
    """No dropout and no ReLU: a kink-free network for comparing optimizer steps.

    At a ReLU kink, float32 rounding in one framework's matmul can put a pre-activation on the
    other side of zero than in another's; Adam's g / (|g| + eps) then turns that tiny gradient
    difference into a step difference of up to 2 * lr. Removing the kinks keeps rounding relative.
    """
    layers = tuple(dataclasses.replace(layer, activation=None) if hasattr(layer, "activation") else layer
                   for layer in without_dropout(task).layers)
    return dataclasses.replace(task, layers=layers)


def smoke_data(task_name: str = "mnist_mlp") -> data.TaskData:
    return data.load_task_data(TASKS[task_name], "mnist", PROFILES["smoke"], Path("/nonexistent"))


def batches(task: TaskSpec, n: int) -> list:
    """The first n training batches of seed 0 in the harness's order, running on into the next
    epochs (new permutation each) as bench.worker does when n exceeds one epoch."""
    td = smoke_data(task.name)
    out: list = []
    epoch = 0
    while len(out) < n:
        out += itertools.islice(data.train_batches(td.train, 0, epoch, task.batch_size), n - len(out))
        epoch += 1
    return out


def bce(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean sigmoid binary cross-entropy of logits, in float64 (the transfer task's loss)."""
    z = logits.astype(np.float64).reshape(-1)
    return float(np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))))


def changed_keys(before: dict, after: dict) -> set:
    """Neutral weight names whose values differ between two get_weights() snapshots."""
    return {k for k in before if not np.array_equal(before[k], after[k])}

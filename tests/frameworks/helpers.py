"""Helpers for in-process adapter tests: built adapters, deterministic task variants, real smoke batches."""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path
from typing import Any

import numpy as np

from bench import data
from bench.harness.adapter import load_adapter
from bench.spec import PROFILES, TASKS, Dropout, TaskSpec


def built(fw: str, task: TaskSpec, weights: dict[str, np.ndarray], phase: int | None = 0, **options: Any) -> Any:
    """The framework's adapter built on CPU from `weights` (as the worker does), phase set."""
    adapter = load_adapter(fw)
    adapter.build(task, weights, "cpu", 0, **options)
    if phase is not None:
        adapter.set_phase(phase)
    return adapter


def without_dropout(task: TaskSpec) -> TaskSpec:
    """The same task with every dropout rate 0: training becomes deterministic and comparable."""
    layers = tuple(dataclasses.replace(layer, rate=0.0) if isinstance(layer, Dropout) else layer
                   for layer in task.layers)
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


def with_optimizer(task: TaskSpec, optimizer: Any) -> TaskSpec:
    """The task with its (single) phase's optimizer replaced."""
    return dataclasses.replace(task, phases=tuple(dataclasses.replace(ph, optimizer=optimizer) for ph in task.phases))


def smoke_data(task_name: str = "mnist_mlp") -> data.TaskData:
    return data.load(TASKS[task_name], "mnist", PROFILES["smoke"], Path("/nonexistent"))


def batches(task: TaskSpec, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The first n training batches of seed 0 in the harness's order, running on into the next
    epochs (new permutation each) as the worker does when n exceeds one epoch."""
    td = smoke_data(task.name)
    out: list[tuple[np.ndarray, np.ndarray]] = []
    epoch = 0
    while len(out) < n:
        out += itertools.islice(data.train_batches(task, td.train, 0, epoch), n - len(out))
        epoch += 1
    return out


def train_everywhere(fws: list[str], task: TaskSpec, w: dict[str, np.ndarray],
                     steps: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float, dict, dict]:
    """Train `steps` in each framework from `w`: (max |Δ loss|, max |Δ weight| over the framework pairs,
    losses per framework, final weights per framework)."""
    losses, final = {}, {}
    for fw in fws:
        adapter = built(fw, task, w)
        losses[fw] = [float(adapter.train_step(x, y)) for x, y in steps]
        final[fw] = adapter.get_weights()
    pairs = list(itertools.combinations(fws, 2))
    loss_gap = max(float(np.abs(np.subtract(losses[a], losses[b])).max()) for a, b in pairs)
    weight_gap = max(float(np.abs(final[a][k] - final[b][k]).max()) for a, b in pairs for k in w)
    return loss_gap, weight_gap, losses, final


def changed_keys(before: dict[str, np.ndarray], after: dict[str, np.ndarray]) -> set[str]:
    """Neutral weight names whose values differ between two get_weights() snapshots."""
    return {k for k in before if not np.array_equal(before[k], after[k])}


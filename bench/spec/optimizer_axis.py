"""The optimizer axis (`bench run --optimizer`): each rule by name with all its constants, and the
learning rate every task uses with it.

Kept apart from TaskSpec on purpose (as bench/spec/sweep.py): a task's hash changes only for the
cells that run another optimizer, whose records hash the task as it ran (`apply`).
"""
from __future__ import annotations

import dataclasses

from bench.spec.optimizers import rule
from bench.spec.tasks import TASKS, TaskSpec

# Learning rate of each rule, one per phase, untuned: the value the frameworks' documentation and
# the Keras examples use for each rule (SGD family and Adagrad 0.01, the adaptive ones 1e-3); the
# photo task's fine-tuning phase takes 1/100 of it, as its own Adam does (1e-3, then 1e-5).
MNIST_LR = {"sgd": 1e-2, "momentum": 1e-2, "nesterov": 1e-2, "adagrad": 1e-2, "rmsprop": 1e-3, "adam": 1e-3,
            "adamw": 1e-3}
LEARNING_RATES: dict[str, dict[str, tuple[float, ...]]] = {
    "mnist_mlp": {k: (lr,) for k, lr in MNIST_LR.items()},
    "mnist_cnn": {k: (lr,) for k, lr in MNIST_LR.items()},
    "cats_vs_dogs": {k: (lr, lr / 100) for k, lr in MNIST_LR.items()},
}


def own(task: TaskSpec) -> str:
    """The name of the task's own optimizer (the first phase's: every phase of a task uses one rule)."""
    return task.phases[0].optimizer.name


def off_default(task_name: str, name: str | None) -> str | None:
    """`name` when it is not the task's own optimizer (what a label must show), else None."""
    task = TASKS.get(task_name)
    return name if name and task is not None and name != own(task) else None


def apply(task: TaskSpec, name: str | None) -> TaskSpec:
    """The task as a cell with optimizer `name` runs it: unchanged for its own (or None), else every
    phase with the named rule at that phase's learning rate."""
    if name is None or name == own(task):
        return task
    lrs = LEARNING_RATES[task.name][name]
    phases = tuple(dataclasses.replace(ph, optimizer=rule(name, lr)) for ph, lr in zip(task.phases, lrs, strict=True))
    return dataclasses.replace(task, phases=phases)

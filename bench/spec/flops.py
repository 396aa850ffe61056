"""Analytic FLOPs per training sample of a task, from its layer list, phase by phase.

Counting convention (as in the MFU literature): 2 FLOPs per multiply-add of conv and dense layers;
BatchNorm, activations, pooling, residual adds and the loss are not counted (a few % of a CNN).
"""
from __future__ import annotations

from typing import Any

from bench.spec.layers import Conv2D, Dense
from bench.spec.shapes import conv_bns, input_shapes, is_trainable, layer_shapes, named_layers
from bench.spec.tasks import TaskSpec


def layer_flops(task: TaskSpec) -> list[tuple[str, int]]:
    """(name, forward FLOPs per sample) of every layer with weights, in forward order; a ConvBN inside
    an MBConv by its own name. Depthwise convolutions have groups = channels."""
    inputs = input_shapes(task)
    out: list[tuple[str, int]] = []
    for (name, layer), shape in zip(named_layers(task), layer_shapes(task)):
        if isinstance(layer, Dense):
            out.append((name, 2 * inputs[name][-1] * layer.units))
        elif isinstance(layer, Conv2D):
            out.append((name, 2 * shape[0] * shape[1] * layer.filters * layer.kernel**2 * inputs[name][-1]))
        for c in conv_bns(layer):
            side = -(-inputs[c.name][0] // c.stride)  # 'same' padding: ceil(in / stride)
            per_output = c.kernel * c.kernel * (1 if c.depthwise else inputs[c.name][-1])
            out.append((c.name, 2 * side * side * c.filters * per_output))
    return out


def phase_train_flops(layers: list[tuple[str, int]], trainable: tuple[str, ...]) -> int:
    """Training FLOPs per sample of one phase, from per-layer forward FLOPs F (layers in forward order).

    A layer with trainable weights costs 3F (forward, gradient w.r.t. its input, gradient w.r.t. its
    weights: the usual "train = 3 x forward"; for the lowest trainable layer the input gradient is
    not needed, so this overcounts that one layer's F); a frozen layer above (after) the lowest
    trainable layer costs 2F (forward, and the backward pass through it to reach the trainable layers
    below); a frozen layer below it costs F (forward only: autodiff stops there). With nothing
    trainable a phase costs the forward pass alone.
    """
    flags = [is_trainable(f"{name}.kernel", trainable) for name, _ in layers]
    first = flags.index(True) if True in flags else len(layers)
    return sum(3 * f if train else (2 * f if i > first else f) for i, ((_, f), train) in enumerate(zip(layers, flags)))


def task_flops(task: TaskSpec) -> dict[str, Any]:
    """{"forward", "train", "phases": {phase: train}} FLOPs per sample; "train" is the first phase's
    (the main table's throughput columns are the first phase's too)."""
    layers = layer_flops(task)
    phases = {ph.name: phase_train_flops(layers, ph.trainable) for ph in task.phases}
    return {"forward": sum(f for _, f in layers), "train": phases[task.phases[0].name], "phases": phases}

"""Analytic FLOPs per training sample of every task, from its spec (the transfer task phase by phase)."""
from __future__ import annotations

from typing import Any

from bench.shapes import flops_per_sample as _mnist_flops
from bench.spec import TaskSpec
from bench.vision import BACKBONES, BackboneSpec, TransferTaskSpec, conv_bns, is_trainable, spatial_sizes

# Counting convention (as in the MFU literature): 2 FLOPs per multiply-add of conv and dense layers;
# BatchNorm, activations, pooling, residual adds and the loss are not counted (a few % of a CNN).


def backbone_layers(backbone: BackboneSpec, image_size: int, in_channels: int = 3) -> list[tuple[str, int]]:
    """(name, forward FLOPs per sample) of every ConvBN in forward order; depthwise convs have groups = C."""
    sizes = spatial_sizes(backbone, image_size)
    out, cin = [], in_channels
    for c in conv_bns(backbone):
        side = sizes[c.name][1]
        per_output = c.kernel * c.kernel * (1 if c.depthwise else cin)
        out.append((c.name, 2 * side * side * c.filters * per_output))
        cin = c.filters
    return out


def transfer_layers(task: TransferTaskSpec) -> list[tuple[str, int]]:
    """The trained model's layers: the backbone's ConvBNs, then the new Dense head `top` (features -> 1)."""
    bb = BACKBONES[task.backbone]
    return [*backbone_layers(bb, task.image_size), ("top", 2 * bb.features * task.num_classes)]


def phase_train_flops(layers: list[tuple[str, int]], trainable: tuple[str, ...]) -> int:
    """Training FLOPs per sample of one phase, from per-layer forward FLOPs F (layers in forward order).

    Rule: a layer with trainable weights costs 3F (forward, gradient w.r.t. its input, gradient
    w.r.t. its weights: the usual "train = 3 x forward"; for the lowest trainable layer the input
    gradient is not needed, so this overcounts that one layer's F); a frozen layer above (after)
    the lowest trainable layer costs 2F (forward, and the backward pass through its activations
    to reach the trainable layers below it); a frozen layer below it costs F (forward only:
    autodiff stops there). With nothing trainable a phase costs the forward pass alone.
    """
    flags = [is_trainable(f"{name}.kernel", trainable) for name, _ in layers]
    first = flags.index(True) if True in flags else len(layers)
    total = 0
    for i, ((_, f), train) in enumerate(zip(layers, flags)):
        total += 3 * f if train else (2 * f if i > first else f)
    return total


def task_flops(task: Any) -> dict[str, Any]:
    """{"forward", "train"} FLOPs per sample; a transfer task adds {"phases": {name: train}} and its
    "train" is the first phase's (the main table's throughput columns are the first phase's too)."""
    if isinstance(task, TaskSpec):
        return dict(_mnist_flops(task))
    layers = transfer_layers(task)
    phases = {ph.name: phase_train_flops(layers, ph.trainable) for ph in task.phases}
    return {"forward": sum(f for _, f in layers), "train": phases[task.phases[0].name], "phases": phases}

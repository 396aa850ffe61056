"""The layer types a model is written in, framework-neutral and channels-last (H, W, C).

A task's model is a tuple of these in forward order; impls/<fw>/layers.py builds each type, so an
architecture is written once, here or in a task. Parameter names are neutral: `<layer name>.kernel`
etc. (bench/spec/shapes.py), where an unnamed layer i is called `layers.<i>`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flatten:
    """Flattens (H, W, C) in that order (C fastest), as Keras and Flax do."""

    name: str | None = None


@dataclass(frozen=True)
class Dense:
    units: int
    activation: str | None = None  # "relu" or None (logits)
    name: str | None = None


@dataclass(frozen=True)
class Conv2D:
    filters: int
    kernel: int
    stride: int = 1
    padding: str = "valid"  # only "valid": "same" with stride 2 pads asymmetrically in TF/Flax (see ConvBN)
    activation: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class MaxPool2D:
    size: int  # window = stride = size, no padding
    name: str | None = None


@dataclass(frozen=True)
class Dropout:
    rate: float
    name: str | None = None


@dataclass(frozen=True)
class GlobalAvgPool:
    """Mean over H and W: (H, W, C) -> (C,)."""

    name: str | None = None


@dataclass(frozen=True)
class ConvBN:
    """Conv without bias (TF 'same' padding) -> BatchNorm, always in inference mode -> optional activation.

    Weights: `<name>.kernel` HWIO with I = in / groups (depthwise: (k, k, 1, C)) and
    `<name>.bn.scale|bias|mean|var`, each (C,). 'same' with stride 2 pads total // 2 before and the
    rest after (the TF/Keras/Flax rule); torch's padding='same' refuses stride 2, so impls/torch pads.
    """

    name: str
    filters: int
    kernel: int
    stride: int = 1
    depthwise: bool = False
    act: str | None = "relu6"
    eps: float = 1e-3


@dataclass(frozen=True)
class MBConv:
    """Inverted residual: [expand 1x1] -> depthwise kxk -> project 1x1 (linear), + input if `residual`."""

    name: str
    expand: ConvBN | None
    depthwise: ConvBN
    project: ConvBN
    residual: bool


Layer = Flatten | Dense | Conv2D | MaxPool2D | Dropout | GlobalAvgPool | ConvBN | MBConv


def efficientnet_lite(stages: tuple[tuple[int, int, int, int, int], ...], stem: int, head: int,
                      eps: float) -> tuple[Layer, ...]:
    """The layers of an EfficientNet-Lite backbone: stem, blocks from (repeats, kernel, stride,
    expand_ratio, out) stages as EfficientNet's builder expands them, head. The first block of a
    stage has its stride and channel change; the rest are stride 1, in = out, hence residual."""
    blocks: list[Layer] = []
    cin = stem
    for repeats, k, s, e, cout in stages:
        for r in range(repeats):
            i, stride = len(blocks), (s if r == 0 else 1)
            p = f"blocks.{i}"
            blocks.append(MBConv(
                name=p,
                expand=ConvBN(f"{p}.expand", cin * e, 1, eps=eps) if e != 1 else None,
                depthwise=ConvBN(f"{p}.depthwise", cin * e, k, stride, depthwise=True, eps=eps),
                project=ConvBN(f"{p}.project", cout, 1, act=None, eps=eps),
                residual=stride == 1 and cin == cout,
            ))
            cin = cout
    return (ConvBN("stem", stem, 3, 2, eps=eps), *blocks, ConvBN("head", head, 1, eps=eps))

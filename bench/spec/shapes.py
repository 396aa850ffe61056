"""What a task's layer list implies: layer names and output shapes, the neutral parameter layout, counts.

Neutral layout (every framework converts from it): float32; `<name>.kernel` is (in, out) for Dense
and HWIO for convolutions (depthwise: (k, k, 1, C)), `<name>.bias` (out,); a ConvBN adds
`<name>.bn.scale|bias|mean|var`; a Dense after a Flatten reads its input in (H, W, C) order.
"""
from __future__ import annotations

import math

from bench.spec.layers import Conv2D, ConvBN, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, MBConv
from bench.spec.tasks import TaskSpec

Shape = tuple[int, ...]
BN_STATISTICS = (".bn.mean", ".bn.var")  # never trained: BatchNorm always runs in inference mode


def layer_name(index: int, layer: Layer) -> str:
    """A layer's neutral name: its own, else `layers.<index>` (its position in the task's list)."""
    return layer.name or f"layers.{index}"


def named_layers(task: TaskSpec) -> list[tuple[str, Layer]]:
    return [(layer_name(i, layer), layer) for i, layer in enumerate(task.layers)]


def conv_bns(layer: Layer) -> list[ConvBN]:
    """The ConvBNs of a layer in forward order (an MBConv has two or three)."""
    if isinstance(layer, ConvBN):
        return [layer]
    if isinstance(layer, MBConv):
        return [c for c in (layer.expand, layer.depthwise, layer.project) if c is not None]
    return []


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF 'same' padding (before, after) of one spatial axis: out = ceil(in / stride)."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _output(layer: Layer, shape: Shape) -> Shape:
    if isinstance(layer, Conv2D):
        if layer.padding != "valid":
            raise ValueError(f"Conv2D padding {layer.padding!r}: only 'valid' is specified (ConvBN pads 'same')")
        h, w, _ = shape
        return ((h - layer.kernel) // layer.stride + 1, (w - layer.kernel) // layer.stride + 1, layer.filters)
    if isinstance(layer, (ConvBN, MBConv)):
        for c in conv_bns(layer):
            shape = (math.ceil(shape[0] / c.stride), math.ceil(shape[1] / c.stride), c.filters)
        return shape
    if isinstance(layer, MaxPool2D):
        return (shape[0] // layer.size, shape[1] // layer.size, shape[2])
    if isinstance(layer, Flatten):
        return (math.prod(shape),)
    if isinstance(layer, GlobalAvgPool):
        return (shape[-1],)
    if isinstance(layer, Dense):
        return (layer.units,)
    if isinstance(layer, Dropout):
        return shape
    raise TypeError(f"no shape rule for layer type {type(layer).__name__}")


def layer_shapes(task: TaskSpec) -> list[Shape]:
    """Output shape (without batch) of every layer, channels-last."""
    shapes: list[Shape] = []
    shape: Shape = task.input_shape
    for layer in task.layers:
        shape = _output(layer, shape)
        shapes.append(shape)
    return shapes


def input_shapes(task: TaskSpec) -> dict[str, Shape]:
    """The shape each layer receives, by neutral name (a ConvBN inside an MBConv by its own name)."""
    out: dict[str, Shape] = {}
    shape: Shape = task.input_shape
    for name, layer in named_layers(task):
        out[name] = shape
        inner = shape
        for c in conv_bns(layer) if isinstance(layer, MBConv) else []:
            out[c.name] = inner
            inner = _output(c, inner)
        shape = _output(layer, shape)
    return out


def _dense(name: str, fan_in: int, units: int) -> dict[str, Shape]:
    return {f"{name}.kernel": (fan_in, units), f"{name}.bias": (units,)}


def param_shapes(task: TaskSpec) -> dict[str, Shape]:
    """Neutral names and shapes of the model's parameters and BatchNorm statistics, in forward order."""
    shapes: dict[str, Shape] = {}
    inputs = input_shapes(task)
    for name, layer in named_layers(task):
        cin = inputs[name][-1]
        if isinstance(layer, Dense):
            shapes.update(_dense(name, cin, layer.units))
        elif isinstance(layer, Conv2D):
            shapes[f"{name}.kernel"] = (layer.kernel, layer.kernel, cin, layer.filters)
            shapes[f"{name}.bias"] = (layer.filters,)
        for c in conv_bns(layer):
            cin = inputs[c.name][-1]
            shapes[f"{c.name}.kernel"] = (c.kernel, c.kernel, 1 if c.depthwise else cin, c.filters)
            shapes.update({f"{c.name}.bn.{s}": (c.filters,) for s in ("scale", "bias", "mean", "var")})
    return shapes


def features_shape(task: TaskSpec) -> Shape:
    """The output shape of the layer the auxiliary head reads."""
    assert task.aux_head is not None
    names = [name for name, _ in named_layers(task)]
    return layer_shapes(task)[names.index(task.aux_head.after)]


def aux_shapes(task: TaskSpec) -> dict[str, Shape]:
    """The auxiliary head's parameters (none for a task without one)."""
    if task.aux_head is None:
        return {}
    head = task.aux_head.layer
    return _dense(head.name or "aux", features_shape(task)[-1], head.units)


def weight_shapes(task: TaskSpec) -> dict[str, Shape]:
    """Every tensor of a weights file: the model's, then the auxiliary head's."""
    return {**param_shapes(task), **aux_shapes(task)}


def is_trainable(name: str, prefixes: tuple[str, ...]) -> bool:
    """Whether a neutral parameter trains under these prefixes (BatchNorm statistics never do)."""
    if name.endswith(BN_STATISTICS):
        return False
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def param_counts(task: TaskSpec) -> dict[str, int]:
    """'total': parameters of the trained model (auxiliary head and BatchNorm statistics excluded);
    per phase name: the parameters that train in that phase."""
    sizes = {k: math.prod(v) for k, v in param_shapes(task).items() if not k.endswith(BN_STATISTICS)}
    out = {"total": sum(sizes.values())}
    for ph in task.phases:
        out[ph.name] = sum(n for k, n in sizes.items() if is_trainable(k, ph.trainable))
    return out


def param_count(task: TaskSpec) -> int:
    return param_counts(task)["total"]


def flatten_input_shape(task: TaskSpec) -> dict[str, tuple[int, int, int]]:
    """For each Dense directly fed by a Flatten of a 3-D map: that map's (H, W, C), by the Dense's name.

    Channels-first frameworks must permute these kernels' rows (C, H, W vs H, W, C order).
    """
    out: dict[str, tuple[int, int, int]] = {}
    inputs = input_shapes(task)
    feeding: Shape | None = None
    for name, layer in named_layers(task):
        if isinstance(layer, Flatten):
            feeding = inputs[name] if len(inputs[name]) == 3 else None
        elif isinstance(layer, Dense):
            if feeding is not None:
                out[name] = (feeding[0], feeding[1], feeding[2])
            feeding = None
    return out

"""Shapes, the neutral parameter layout and analytic FLOPs, derived from a task's layer list."""
from __future__ import annotations

import math

from bench.spec import Conv2D, Dense, Flatten, MaxPool2D, TaskSpec


def layer_shapes(task: TaskSpec) -> list[tuple[int, ...]]:
    """Output shape (without batch) of every layer, channels-last."""
    shape: tuple[int, ...] = task.input_shape
    out = []
    for layer in task.layers:
        if isinstance(layer, Conv2D):
            h, w, _ = shape
            assert layer.padding == "valid", "only valid padding is specified"
            shape = ((h - layer.kernel) // layer.stride + 1, (w - layer.kernel) // layer.stride + 1, layer.filters)
        elif isinstance(layer, MaxPool2D):
            h, w, c = shape
            shape = (h // layer.size, w // layer.size, c)
        elif isinstance(layer, Flatten):
            shape = (math.prod(shape),)
        elif isinstance(layer, Dense):
            shape = (layer.units,)
        out.append(shape)
    return out


def param_shapes(task: TaskSpec) -> dict[str, tuple[int, ...]]:
    """Neutral parameter names and shapes: layers.<i>.kernel is (in, out) or HWIO; .bias is (out,)."""
    shapes: dict[str, tuple[int, ...]] = {}
    prev: tuple[int, ...] = task.input_shape
    for i, (layer, shape) in enumerate(zip(task.layers, layer_shapes(task))):
        if isinstance(layer, Dense):
            shapes[f"layers.{i}.kernel"] = (prev[0], layer.units)
            shapes[f"layers.{i}.bias"] = (layer.units,)
        elif isinstance(layer, Conv2D):
            shapes[f"layers.{i}.kernel"] = (layer.kernel, layer.kernel, prev[-1], layer.filters)
            shapes[f"layers.{i}.bias"] = (layer.filters,)
        prev = shape
    return shapes


def flops_per_sample(task: TaskSpec) -> dict[str, int]:
    """Analytic FLOPs (2 per multiply-add) of dense and conv layers; train = 3 x forward."""
    fwd = 0
    prev: tuple[int, ...] = task.input_shape
    for layer, shape in zip(task.layers, layer_shapes(task)):
        if isinstance(layer, Dense):
            fwd += 2 * prev[0] * layer.units
        elif isinstance(layer, Conv2D):
            fwd += 2 * shape[0] * shape[1] * layer.filters * layer.kernel * layer.kernel * prev[-1]
        prev = shape
    return {"forward": fwd, "train": 3 * fwd}


def flatten_input_shape(task: TaskSpec) -> dict[int, tuple[int, int, int]]:
    """For each Dense directly fed by a Flatten of a 3-D map: that map's (H, W, C).

    Channels-first frameworks must permute these kernels' rows (C,H,W vs H,W,C order).
    """
    out: dict[int, tuple[int, int, int]] = {}
    shapes = [task.input_shape, *layer_shapes(task)]
    feeding: tuple[int, int, int] | None = None
    for i, layer in enumerate(task.layers):
        if isinstance(layer, Flatten):
            feeding = shapes[i] if len(shapes[i]) == 3 else None  # type: ignore[assignment]
        elif isinstance(layer, Dense):
            if feeding is not None:
                out[i] = feeding
            feeding = None
    return out

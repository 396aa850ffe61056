"""The spec's layer list as a torch module (NCHW inside), and neutral <-> torch weight layouts."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.adapter import unsupported
from bench.shapes import flatten_input_shape, layer_shapes
from bench.spec import Conv2D, Dense, Dropout, Flatten, MaxPool2D, TaskSpec

_ACTIVATIONS = {None: None, "relu": F.relu}


class SpecNet(nn.Module):
    """Block i is the spec's layer i, so neutral names `layers.<i>.*` map straight onto it."""

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        self.acts = []
        prev = task.input_shape
        for layer, shape in zip(task.layers, layer_shapes(task)):
            act = getattr(layer, "activation", None)
            if act not in _ACTIVATIONS:
                raise unsupported(f"activation {act!r}", "torch")
            if isinstance(layer, Dense):
                blocks.append(nn.Linear(prev[0], layer.units))
            elif isinstance(layer, Conv2D):
                if layer.padding != "valid":
                    raise unsupported(f"padding {layer.padding!r}", "torch")
                blocks.append(nn.Conv2d(prev[-1], layer.filters, layer.kernel, layer.stride, padding=0))
            elif isinstance(layer, MaxPool2D):
                blocks.append(nn.MaxPool2d(layer.size))
            elif isinstance(layer, Flatten):
                blocks.append(nn.Flatten())  # C,H,W order: the kernel after it is permuted on load
            elif isinstance(layer, Dropout):
                blocks.append(nn.Dropout(layer.rate))
            else:
                raise unsupported(type(layer).__name__, "torch")
            self.acts.append(_ACTIVATIONS[act])
            prev = shape
        self.layers = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = len(self.layers) - 1
        for i, (block, act) in enumerate(zip(self.layers, self.acts)):
            if i == last and torch.is_autocast_enabled(x.device.type):
                # Mixed precision: the output layer (the logits) computes in float32, as in Keras and Flax.
                with torch.autocast(x.device.type, enabled=False):
                    x = block(x.float())
            else:
                x = block(x)
            if act is not None:
                x = act(x)
        return x


def to_torch(task: TaskSpec, name: str, value: np.ndarray) -> np.ndarray:
    """Neutral layout -> torch layout for one parameter."""
    i = int(name.split(".")[1])
    if not name.endswith(".kernel"):
        return value
    if value.ndim == 4:  # HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    hwc = flatten_input_shape(task).get(i)
    if hwc is not None:  # rows in (H, W, C) order -> (C, H, W) order, as torch flattens NCHW
        h, w, c = hwc
        value = value.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return value.T  # (in, out) -> (out, in)


def from_torch(task: TaskSpec, name: str, value: np.ndarray) -> np.ndarray:
    """Torch layout -> neutral layout (the inverse of to_torch)."""
    i = int(name.split(".")[1])
    if not name.endswith(".kernel"):
        return value
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    value = value.T
    hwc = flatten_input_shape(task).get(i)
    if hwc is not None:
        h, w, c = hwc
        value = value.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
    return value


def torch_name(name: str) -> str:
    """layers.<i>.kernel -> layers.<i>.weight (torch's parameter name)."""
    return name.replace(".kernel", ".weight")

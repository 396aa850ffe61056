"""The spec's layer list as one torch module (NCHW inside), and the neutral <-> torch weight layouts.

Modules sit at their neutral names (`layers.3`, `blocks.13`, `top`), so a state-dict key is the neutral
name with torch's own suffixes: `layers.3.weight`, `blocks.13.depthwise.conv.weight`, `head.bn.running_var`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.harness.adapter import unsupported
from bench.spec import Conv2D, ConvBN, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, MBConv, TaskSpec
from bench.spec.shapes import conv_bns, features_shape, flatten_input_shape, input_shapes, named_layers, same_padding

_ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor] | None] = {None: None, "relu": F.relu}
_BN_STATS = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm always in inference mode: model.train() (for dropout) must not switch it. In eval mode
    torch normalises with running_mean/var and never updates them; weight and bias still get gradients
    where they require them."""

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


class ConvBNAct(nn.Module):
    """The spec's ConvBN: TF-'same' conv without bias -> inference BatchNorm -> optional ReLU6."""

    def __init__(self, spec: ConvBN, cin: int, size: int) -> None:
        super().__init__()
        if spec.act not in (None, "relu6"):
            raise unsupported(f"activation {spec.act!r}", "torch")
        k, s = spec.kernel, spec.stride
        before, after = same_padding(size, k, s)
        # Symmetric padding goes into the conv itself (no extra copy); TF's asymmetric stride-2
        # padding (less before than after) needs an explicit F.pad.
        self.pad = None if before == after else (before, after, before, after)  # (left, right, top, bottom)
        self.conv = nn.Conv2d(cin, spec.filters, k, s, padding=before if self.pad is None else 0,
                              groups=spec.filters if spec.depthwise else 1, bias=False)
        self.bn = FrozenBatchNorm2d(spec.filters, eps=spec.eps)
        self.relu6 = spec.act == "relu6"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.bn(self.conv(x))
        # In place: no backward needs the BN output (hardtanh_ saves its own result), and the allocation
        # it saves per layer is a visible share of a CPU step.
        return F.relu6(x, inplace=True) if self.relu6 else x


class MBConvBlock(nn.Module):
    def __init__(self, spec: MBConv, shapes: dict[str, tuple[int, ...]]) -> None:
        super().__init__()
        self.expand = ConvBNAct(spec.expand, shapes[spec.expand.name][-1], shapes[spec.expand.name][0]) \
            if spec.expand else None
        hidden = spec.depthwise.filters
        self.depthwise = ConvBNAct(spec.depthwise, hidden, shapes[spec.depthwise.name][0])
        self.project = ConvBNAct(spec.project, hidden, shapes[spec.project.name][0])
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class GlobalAvgPool2d(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


def build_layer(layer: Layer, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]]) -> nn.Module:
    """The torch module of one spec layer receiving `shape` (channels-last, without batch)."""
    if isinstance(layer, Dense):
        return nn.Linear(shape[-1] if len(shape) == 1 else int(np.prod(shape)), layer.units)
    if isinstance(layer, Conv2D):
        return nn.Conv2d(shape[-1], layer.filters, layer.kernel, layer.stride, padding=0)
    if isinstance(layer, ConvBN):
        return ConvBNAct(layer, shape[-1], shape[0])
    if isinstance(layer, MBConv):
        return MBConvBlock(layer, shapes)
    if isinstance(layer, MaxPool2D):
        return nn.MaxPool2d(layer.size)
    if isinstance(layer, Flatten):
        return nn.Flatten()  # C, H, W order: the Dense after it has its kernel rows permuted on load
    if isinstance(layer, GlobalAvgPool):
        return GlobalAvgPool2d()
    if isinstance(layer, Dropout):
        return nn.Dropout(layer.rate)
    raise unsupported(type(layer).__name__, "torch")


def _attach(root: nn.Module, name: str, module: nn.Module) -> None:
    """Register `module` at the dotted neutral name, creating plain containers on the way."""
    *path, last = name.split(".")
    for part in path:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(last, module)


class Net(nn.Module):
    """The task's layers in order; the last layer (the logits) and the auxiliary head compute in
    float32 under bf16 autocast, as in Keras and Flax."""

    def __init__(self, task: TaskSpec) -> None:
        super().__init__()
        shapes = input_shapes(task)
        self.steps: list[tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor] | None]] = []
        for name, layer in named_layers(task):
            act = getattr(layer, "activation", None)
            if act not in _ACTIVATIONS:
                raise unsupported(f"activation {act!r}", "torch")
            module = build_layer(layer, shapes[name], shapes)
            _attach(self, name, module)
            self.steps.append((module, _ACTIVATIONS[act]))
        self.aux_name: str | None = None  # registered at its neutral name only (an attribute would add a 2nd)
        self.features_end = len(self.steps)  # the auxiliary head reads the output of step features_end - 1
        if task.aux_head is not None:
            self.features_end = [name for name, _ in named_layers(task)].index(task.aux_head.after) + 1
            self.aux_name = task.aux_head.layer.name or "aux"
            _attach(self, self.aux_name, nn.Linear(features_shape(task)[-1], task.aux_head.layer.units))

    def _run(self, x: torch.Tensor, steps: list[tuple[nn.Module, Callable[[torch.Tensor], torch.Tensor] | None]]
             ) -> torch.Tensor:
        for module, act in steps:
            x = module(x)
            if act is not None:
                x = act(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._run(x, self.steps[:-1])
        return _fp32(self.steps[-1][0], x, self.steps[-1][1])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the auxiliary head reads: the output of its `after` layer."""
        return self._run(x, self.steps[: self.features_end])

    def aux_logits(self, x: torch.Tensor) -> torch.Tensor:
        assert self.aux_name is not None, "this task has no auxiliary head"
        return _fp32(self.get_submodule(self.aux_name), self.features(x), None)


def _fp32(module: nn.Module, x: torch.Tensor, act: Callable[[torch.Tensor], torch.Tensor] | None) -> torch.Tensor:
    """Apply a head in float32 when autocast is on (float32 logits and loss in bf16 runs)."""
    if torch.is_autocast_enabled(x.device.type):
        with torch.autocast(x.device.type, enabled=False):
            x = module(x.float())
    else:
        x = module(x)
    return act(x) if act is not None else x


def torch_names(task: TaskSpec, neutral: list[str]) -> dict[str, str]:
    """Neutral name -> state-dict key: a kernel is a `weight` (a ConvBN's sits in its `conv`), BatchNorm
    tensors take torch's names."""
    bn_layers = {c.name for layer in task.layers for c in conv_bns(layer)}
    out = {}
    for name in neutral:
        if ".bn." in name:
            owner, stat = name.split(".bn.")
            out[name] = f"{owner}.bn.{_BN_STATS[stat]}"
        else:
            owner, part = name.rsplit(".", 1)
            weight = "conv.weight" if owner in bn_layers else "weight"
            out[name] = f"{owner}.{weight if part == 'kernel' else part}"
    return out


def to_torch(task: TaskSpec, name: str, value: np.ndarray) -> np.ndarray:
    """Neutral layout -> torch layout for one tensor."""
    if value.ndim == 4:  # HWIO -> OIHW (depthwise (k, k, 1, C) -> (C, 1, k, k))
        return value.transpose(3, 2, 0, 1)
    if value.ndim != 2:
        return value
    hwc = flatten_input_shape(task).get(name.rsplit(".", 1)[0])
    if hwc is not None:  # rows in (H, W, C) order -> (C, H, W) order, as torch flattens NCHW
        h, w, c = hwc
        value = value.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
    return value.T  # (in, out) -> (out, in)


def from_torch(task: TaskSpec, name: str, value: np.ndarray) -> np.ndarray:
    """Torch layout -> neutral layout (the inverse of to_torch)."""
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    if value.ndim != 2:
        return value
    value = value.T
    hwc = flatten_input_shape(task).get(name.rsplit(".", 1)[0])
    if hwc is not None:
        h, w, c = hwc
        value = value.reshape(c, h, w, -1).transpose(1, 2, 0, 3).reshape(h * w * c, -1)
    return value

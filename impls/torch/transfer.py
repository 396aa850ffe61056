"""PyTorch adapter for the transfer task: EfficientNet-Lite walked from the spec, frozen BN, phased fine-tuning."""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench.vision import (BACKBONES, ConvBN, MBConv, TransferTaskSpec, conv_bns, is_trainable, same_padding,
                          spatial_sizes, transfer_shapes)
from impls.torch import adapter as mnist
from impls.torch.adapter import _optimizer


class FrozenBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm that is always in inference mode: model.train() (for dropout) must not switch it.

    In eval mode torch normalises with running_mean/var and never updates them; scale and bias
    (weight/bias) still get gradients when their requires_grad is set.
    """

    def train(self, mode: bool = True) -> FrozenBatchNorm2d:
        return super().train(False)


class ConvBNAct(nn.Module):
    """The spec's ConvBN: TF-'same' conv without bias -> inference BatchNorm -> optional ReLU6."""

    def __init__(self, spec: ConvBN, cin: int, size: int, eps: float) -> None:
        super().__init__()
        k, s = spec.kernel, spec.stride
        before, after = same_padding(size, k, s)
        # Symmetric padding goes into the conv itself (no extra copy); TF's asymmetric
        # stride-2 padding (less before than after) needs an explicit F.pad.
        self.pad = None if before == after else (before, after, before, after)  # (left, right, top, bottom)
        self.conv = nn.Conv2d(cin, spec.filters, k, s, padding=before if self.pad is None else 0,
                              groups=spec.filters if spec.depthwise else 1, bias=False)
        self.bn = FrozenBatchNorm2d(spec.filters, eps=eps)
        self.relu6 = spec.act == "relu6"
        if spec.act not in (None, "relu6"):
            raise NotImplementedError(f"activation {spec.act!r} is not implemented in impls/torch")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad is not None:
            x = F.pad(x, self.pad)
        x = self.bn(self.conv(x))
        # In place: the BN output is needed by no backward (hardtanh_ saves its own result),
        # and skipping one allocation per layer saves ~10% of a CPU step.
        return F.relu6(x, inplace=True) if self.relu6 else x


class MBConvBlock(nn.Module):
    def __init__(self, spec: MBConv, cin: int, sizes: dict[str, tuple[int, int]], eps: float) -> None:
        super().__init__()
        self.expand = ConvBNAct(spec.expand, cin, sizes[spec.expand.name][0], eps) if spec.expand else None
        hidden = spec.expand.filters if spec.expand else cin
        self.depthwise = ConvBNAct(spec.depthwise, hidden, sizes[spec.depthwise.name][0], eps)
        self.project = ConvBNAct(spec.project, hidden, sizes[spec.project.name][0], eps)
        self.residual = spec.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class TransferNet(nn.Module):
    """Module paths mirror the neutral names: `blocks.13.depthwise` holds `.conv` and `.bn`."""

    def __init__(self, task: TransferTaskSpec) -> None:
        super().__init__()
        bb = BACKBONES[task.backbone]
        sizes = spatial_sizes(bb, task.image_size)
        self.stem = ConvBNAct(bb.stem, 3, sizes[bb.stem.name][0], bb.bn_eps)
        blocks, cin = [], bb.stem.filters
        for b in bb.blocks:
            blocks.append(MBConvBlock(b, cin, sizes, bb.bn_eps))
            cin = b.project.filters
        self.blocks = nn.ModuleList(blocks)
        self.head = ConvBNAct(bb.head, cin, sizes[bb.head.name][0], bb.bn_eps)
        self.dropout = nn.Dropout(task.head_dropout)
        self.top = nn.Linear(bb.features, 1)
        self.imagenet = nn.Linear(bb.features, bb.imagenet_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(dim=(2, 3))  # global average pool -> (B, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head_fp32("top", self.dropout(self.features(x)))

    def head_fp32(self, head: str, feats: torch.Tensor) -> torch.Tensor:
        """A head on the pooled features; under bf16 autocast it computes in float32 (float32 logits)."""
        if torch.is_autocast_enabled(feats.device.type):
            with torch.autocast(feats.device.type, enabled=False):
                return getattr(self, head)(feats.float())
        return getattr(self, head)(feats)


def torch_names(task: TransferTaskSpec) -> dict[str, str]:
    """Neutral name -> state_dict key, for every key of transfer_shapes(task)."""
    stat = {"kernel": "conv.weight", "bn.scale": "bn.weight", "bn.bias": "bn.bias",
            "bn.mean": "bn.running_mean", "bn.var": "bn.running_var"}
    out = {f"{c.name}.{n}": f"{c.name}.{t}" for c in conv_bns(BACKBONES[task.backbone]) for n, t in stat.items()}
    for head in ("top", "imagenet"):
        out[f"{head}.kernel"], out[f"{head}.bias"] = f"{head}.weight", f"{head}.bias"
    assert out.keys() == transfer_shapes(task).keys()
    return out


def to_torch(value: np.ndarray) -> np.ndarray:
    """Neutral -> torch layout: HWIO -> OIHW (depthwise (k,k,1,C) -> (C,1,k,k)), dense (in,out) -> (out,in)."""
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)
    return value.T if value.ndim == 2 else value


def from_torch(value: np.ndarray) -> np.ndarray:
    if value.ndim == 4:
        return value.transpose(2, 3, 1, 0)
    return value.T if value.ndim == 2 else value


class Adapter(mnist.Adapter):
    """versions/sync/device_name/device_peak_bytes come from the MNIST adapter."""

    name: ClassVar[str] = "torch"

    def build(self, task: TransferTaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        self.device = mnist.select_device(device)
        compiled, self._settings = mnist.configure(self.device, mode, precision)
        self.bf16 = precision == "bf16"
        torch.manual_seed(seed)  # dropout only: weights come from the dict
        self.task = task
        self.names = torch_names(task)
        if weights.keys() != self.names.keys():
            raise ValueError(f"weights keys differ from the spec: {sorted(weights.keys() ^ self.names.keys())[:3]}")
        model = TransferNet(task)
        state = model.state_dict()  # tensors share storage with the parameters and buffers
        with torch.no_grad():
            for k, v in weights.items():
                state[self.names[k]].copy_(torch.from_numpy(np.ascontiguousarray(to_torch(v))))
        # The NHWC input permuted to NCHW is already channels_last in memory; keeping weights and
        # activations in that format too measured 1.6x faster per CPU step than contiguous NCHW.
        self.model = model.to(self.device, memory_format=torch.channels_last)
        # The training forward is compiled (one recompile per phase: requires_grad changes); evaluation stays eager.
        self.forward = torch.compile(self.model, dynamic=False) if compiled else self.model
        if compiled:
            self._settings["mode"] += "; training steps only, evaluation eager"
        params = dict(self.model.named_parameters())
        self._neutral_param = {n: params[t] for n, t in self.names.items() if t in params}
        for p in self.model.parameters():
            p.requires_grad_(False)  # no phase yet: nothing trains
        self.opt: torch.optim.Optimizer | None = None

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        trainable = []
        for name, p in self._neutral_param.items():
            train = is_trainable(name, phase.trainable) and not name.startswith("imagenet.")
            # requires_grad=False everywhere in front of the first trainable layer means autograd
            # records nothing there: phase 0 runs the whole backbone without a graph.
            p.requires_grad_(train)
            p.grad = None
            if train:
                trainable.append(p)
        self.opt = _optimizer(phase.optimizer, trainable)  # fresh Adam state for this phase

    def trainable_count(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    def param_count(self) -> int:
        return sum(p.numel() for n, p in self._neutral_param.items() if not n.startswith("imagenet."))

    def _x(self, x: np.ndarray) -> torch.Tensor:
        # NHWC -> NCHW view with channels_last strides: no copy, the layout the model runs in.
        return torch.from_numpy(x).to(self.device, non_blocking=True).permute(0, 3, 1, 2)

    def train_step(self, x: np.ndarray, y: np.ndarray) -> torch.Tensor:
        if self.opt is None:
            raise RuntimeError("set_phase() must be called before train_step()")
        self.model.train()  # dropout on; FrozenBatchNorm2d stays in inference mode
        logit = self._logits(self._x(x)).squeeze(1)
        target = torch.from_numpy(y).to(self.device, torch.float32, non_blocking=True)
        loss = F.binary_cross_entropy_with_logits(logit, target)  # log-sum-exp form: stable
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return loss.detach()

    def _infer(self, x: np.ndarray, head: str) -> np.ndarray:
        self.model.eval()
        with torch.inference_mode():
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                out = self.model.head_fp32(head, self.model.features(self._x(x)))
            # .numpy() would share memory with the tensor: copy out explicitly.
            return out.float().cpu().numpy().copy()

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._infer(x, "top")

    def predict_imagenet(self, x: np.ndarray) -> np.ndarray:
        return self._infer(x, "imagenet")

    def get_weights(self) -> dict[str, np.ndarray]:
        state = self.model.state_dict()
        # .numpy() shares memory with the live tensor on CPU: always copy, into C order.
        return {n: np.array(from_torch(state[t].detach().cpu().numpy()), order="C", copy=True)
                for n, t in self.names.items()}

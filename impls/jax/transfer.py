"""JAX/Flax NNX transfer learning: the spec's EfficientNet-Lite0 + new head, one jitted donated train step per phase."""
from __future__ import annotations

import functools
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bench.adapter import unsupported
from bench.vision import BACKBONES, ConvBN, MBConv, TransferTaskSpec, is_trainable, transfer_shapes
from impls.jax import adapter as mnist
from impls.jax.models import build_tx


class _ConvBN(nnx.Module):
    """Conv (no bias, TF 'same') -> BatchNorm frozen in inference mode -> optional ReLU6."""

    def __init__(self, spec: ConvBN, cin: int, eps: float, rngs: nnx.Rngs, dtype: Any = None) -> None:
        if spec.act not in (None, "relu6"):
            raise unsupported(f"activation {spec.act!r}", "jax")
        # groups = channels makes the HWIO kernel (k, k, 1, C): the neutral depthwise layout as is.
        # dtype bfloat16 (bf16 precision): computed in bf16 from float32 parameters and statistics.
        self.conv = nnx.Conv(cin, spec.filters, (spec.kernel, spec.kernel), strides=spec.stride, padding="SAME",
                             use_bias=False, feature_group_count=cin if spec.depthwise else 1, dtype=dtype, rngs=rngs)
        # use_running_average=True at construction and no .train() call anywhere: the moving
        # statistics are BatchStat constants that no step updates, in every phase.
        self.bn = nnx.BatchNorm(spec.filters, use_running_average=True, epsilon=eps, dtype=dtype, rngs=rngs)
        self.relu6 = spec.act == "relu6"

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return jax.nn.relu6(x) if self.relu6 else x


class _MBConv(nnx.Module):
    def __init__(self, spec: MBConv, cin: int, eps: float, rngs: nnx.Rngs, dtype: Any = None) -> None:
        self.expand = _ConvBN(spec.expand, cin, eps, rngs, dtype) if spec.expand is not None else None
        hidden = spec.expand.filters if spec.expand is not None else cin
        self.depthwise = _ConvBN(spec.depthwise, hidden, eps, rngs, dtype)
        self.project = _ConvBN(spec.project, hidden, eps, rngs, dtype)
        self.residual = spec.residual

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class _TransferNet(nnx.Module):
    """Attribute names follow the spec's op names, so an NNX path minus its 'conv' part is the neutral name."""

    def __init__(self, task: TransferTaskSpec, rngs: nnx.Rngs, dtype: Any = None) -> None:
        bb = BACKBONES[task.backbone]
        self.stem = _ConvBN(bb.stem, task.input_shape[-1], bb.bn_eps, rngs, dtype)
        blocks, cin = [], bb.stem.filters
        for spec in bb.blocks:  # block i is attribute blocks[i]: the spec's name `blocks.<i>`
            blocks.append(_MBConv(spec, cin, bb.bn_eps, rngs, dtype))
            cin = spec.project.filters
        self.blocks = nnx.List(blocks)
        self.head = _ConvBN(bb.head, cin, bb.bn_eps, rngs, dtype)
        self.dropout = nnx.Dropout(task.head_dropout, rngs=rngs)
        # The heads compute in float32 in both precisions: float32 logits and loss.
        self.top = nnx.Linear(bb.features, 1, dtype=jnp.float32, rngs=rngs)
        self.imagenet = nnx.Linear(bb.features, bb.imagenet_classes, dtype=jnp.float32, rngs=rngs)

    def features(self, x: jax.Array) -> jax.Array:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x).mean(axis=(1, 2))

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        # A static flag instead of model.train(), which would also switch BatchNorm to batch statistics.
        return self.top(self.dropout(self.features(x), deterministic=not train))

    def imagenet_logits(self, x: jax.Array) -> jax.Array:
        return self.imagenet(self.features(x))


def _neutral(path: tuple) -> str:
    return ".".join(str(p) for p in path if p != "conv")


def _in_phase(prefixes: tuple[str, ...], path: tuple, _var: object) -> bool:
    """An NNX filter: whether the variable at `path` trains under these prefixes."""
    return is_trainable(_neutral(path), prefixes)


def _loss(model: _TransferNet, x: jax.Array, y: jax.Array) -> jax.Array:
    logit = model(x, train=True)[:, 0]
    return optax.sigmoid_binary_cross_entropy(logit, y.astype(logit.dtype)).mean()


def _train(gdef, gdef_opt, wrt, states, x, y):
    model = nnx.merge(gdef, states[0])
    opt = nnx.merge(gdef_opt, states[1])
    # DiffState: only `wrt` is a differentiation input; the rest enters as constants, so JAX
    # never builds the backward pass of frozen layers (nor the input gradient below them).
    loss, grads = nnx.value_and_grad(_loss, argnums=nnx.DiffState(0, wrt))(model, x, y)
    opt.update(model, grads)
    return (nnx.state(model), nnx.state(opt)), loss


def _predict(gdef, method, model_state, x):
    return getattr(nnx.merge(gdef, model_state), method)(x)


class Adapter(mnist.Adapter):
    """Shares versions(), sync(), device_name() and device_peak_bytes() with the MNIST adapter."""

    name: ClassVar[str] = "jax"

    def build(self, task: TransferTaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        self._settings = mnist.configure(device, mode, precision)
        self.device = mnist.select_device(device)
        self.task = task
        dtype = jnp.bfloat16 if precision == "bf16" else None
        with jax.default_device(self.device):
            # Abstract build: running the initializers that the neutral weights overwrite would compile
            # one XLA program per shape (~20 s on CPU). The dropout stream, the one real random state, follows.
            model = nnx.eval_shape(lambda: _TransferNet(task, nnx.Rngs(0), dtype))
            model.dropout = nnx.Dropout(task.head_dropout, rngs=nnx.Rngs(dropout=seed))
        named = {_neutral(p): v for p, v in nnx.to_flat_state(nnx.state(model, (nnx.Param, nnx.BatchStat)))}
        if (diff := named.keys() ^ transfer_shapes(task).keys()):
            raise RuntimeError(f"model names differ from the spec's: {sorted(diff)[:5]}")
        for name, var in named.items():
            if var.shape != weights[name].shape:
                raise ValueError(f"{name}: shape {weights[name].shape}, model wants {var.shape}")
            var.set_value(jax.device_put(np.asarray(weights[name], np.float32), self.device))
        self._gdef, model_state = nnx.split(model)
        self._paths = {_neutral(p): p for p, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))}
        self._sizes = {n: int(np.prod(v.shape)) for n, v in named.items()}
        self.states = (jax.device_put(model_state, self.device), None)
        self._pred = jax.jit(functools.partial(_predict, self._gdef, "__call__"))
        self._pred_imagenet = jax.jit(functools.partial(_predict, self._gdef, "imagenet_logits"))
        self._step = None
        self._trainable: list[str] = []

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        self._trainable = [n for n in self._paths if is_trainable(n, phase.trainable)]
        wrt = nnx.All(nnx.Param, functools.partial(_in_phase, phase.trainable))
        model = nnx.merge(self._gdef, self.states[0])
        with jax.default_device(self.device):
            # A fresh optimizer whose state covers only the trainable parameters.
            opt = nnx.Optimizer(model, build_tx(phase.optimizer), wrt=wrt)
            gdef_opt, opt_state = nnx.split(opt)
        self.states = (self.states[0], jax.device_put(opt_state, self.device))
        # Donating the state lets XLA update the parameters in place.
        self._step = jax.jit(functools.partial(_train, self._gdef, gdef_opt, wrt), donate_argnums=0)

    def trainable_count(self) -> int:
        return sum(self._sizes[n] for n in self._trainable)

    def param_count(self) -> int:
        return sum(self._sizes[n] for n in self._paths if not n.startswith("imagenet."))

    def train_step(self, x: np.ndarray, y: np.ndarray) -> jax.Array:
        if self._step is None:
            raise RuntimeError("call set_phase() before train_step()")
        self.states, loss = self._step(self.states, x, y)  # NumPy in: see impls/jax/adapter.py train_step
        return loss

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._pred(self.states[0], x), dtype=np.float32)

    def predict_imagenet(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self._pred_imagenet(self.states[0], x), dtype=np.float32)

    def get_weights(self) -> dict[str, np.ndarray]:
        flat = nnx.to_flat_state(nnx.state(nnx.merge(self._gdef, self.states[0]), (nnx.Param, nnx.BatchStat)))
        # Copies: the next donated step reuses these device buffers.
        return {_neutral(p): np.array(v[...], dtype=np.float32, copy=True) for p, v in flat}

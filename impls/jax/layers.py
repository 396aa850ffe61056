"""The spec's layer list as one Flax NNX module (NHWC, (in, out) and HWIO: the neutral layout).

Modules sit at their neutral names (`layers` and `blocks` are nnx.Lists), so a state path minus a
ConvBN's `conv` part is the neutral name: ("blocks", 13, "depthwise", "conv", "kernel") is
`blocks.13.depthwise.kernel`.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from bench.harness.adapter import unsupported
from bench.spec import Conv2D, ConvBN, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, MBConv, TaskSpec
from bench.spec.shapes import features_shape, input_shapes, named_layers

_ACTIVATIONS = {None: None, "relu": jax.nn.relu}


class _Pool(nnx.Module):
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.max_pool(x, (self.size, self.size), strides=(self.size, self.size), padding="VALID")


class _Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)  # H, W, C order: the neutral order


class _GlobalAvgPool(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.mean(axis=(1, 2))


class _ConvBN(nnx.Module):
    """Conv (no bias, TF 'same') -> BatchNorm frozen in inference mode -> optional ReLU6."""

    def __init__(self, spec: ConvBN, cin: int, rngs: nnx.Rngs, dtype: Any) -> None:
        if spec.act not in (None, "relu6"):
            raise unsupported(f"activation {spec.act!r}", "jax")
        # groups = channels makes the HWIO kernel (k, k, 1, C): the neutral depthwise layout as is.
        self.conv = nnx.Conv(cin, spec.filters, (spec.kernel, spec.kernel), strides=spec.stride, padding="SAME",
                             use_bias=False, feature_group_count=cin if spec.depthwise else 1, dtype=dtype, rngs=rngs)
        # use_running_average=True and no .train() anywhere: the moving statistics are BatchStat
        # constants that no step updates, in every phase.
        self.bn = nnx.BatchNorm(spec.filters, use_running_average=True, epsilon=spec.eps, dtype=dtype, rngs=rngs)
        self.relu6 = spec.act == "relu6"

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.bn(self.conv(x))
        return jax.nn.relu6(x) if self.relu6 else x


class _MBConv(nnx.Module):
    def __init__(self, spec: MBConv, shapes: dict[str, tuple[int, ...]], rngs: nnx.Rngs, dtype: Any) -> None:
        self.expand = _ConvBN(spec.expand, shapes[spec.expand.name][-1], rngs, dtype) if spec.expand else None
        hidden = spec.depthwise.filters
        self.depthwise = _ConvBN(spec.depthwise, hidden, rngs, dtype)
        self.project = _ConvBN(spec.project, hidden, rngs, dtype)
        self.residual = spec.residual

    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


def build_layer(layer: Layer, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]], rngs: nnx.Rngs,
                dtype: Any) -> nnx.Module:
    """The NNX module of one spec layer receiving `shape` (without batch); dtype: the compute dtype."""
    if isinstance(layer, Dense):
        return nnx.Linear(shape[-1], layer.units, dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    if isinstance(layer, Conv2D):
        return nnx.Conv(shape[-1], layer.filters, (layer.kernel, layer.kernel), strides=(layer.stride, layer.stride),
                        padding=layer.padding.upper(), dtype=dtype, param_dtype=jnp.float32, rngs=rngs)
    if isinstance(layer, ConvBN):
        return _ConvBN(layer, shape[-1], rngs, dtype)
    if isinstance(layer, MBConv):
        return _MBConv(layer, shapes, rngs, dtype)
    if isinstance(layer, MaxPool2D):
        return _Pool(layer.size)
    if isinstance(layer, Flatten):
        return _Flatten()
    if isinstance(layer, GlobalAvgPool):
        return _GlobalAvgPool()
    if isinstance(layer, Dropout):
        return nnx.Dropout(layer.rate, deterministic=None, rngs=rngs)
    raise unsupported(type(layer).__name__, "jax")


class Net(nnx.Module):
    """The task's layers in order. bf16: every layer computes in bfloat16 from float32 parameters,
    except the last (the logits) and the auxiliary head, in float32."""

    def __init__(self, task: TaskSpec, rngs: nnx.Rngs, precision: str = "fp32") -> None:
        shapes = input_shapes(task)
        layers = named_layers(task)
        modules: dict[str, list[tuple[str, nnx.Module]]] = {}
        for i, (name, layer) in enumerate(layers):
            act = getattr(layer, "activation", None)
            if act not in _ACTIVATIONS:
                raise unsupported(f"activation {act!r}", "jax")
            dtype = jnp.bfloat16 if precision == "bf16" and i != len(layers) - 1 else jnp.float32
            head, _, rest = name.partition(".")
            modules.setdefault(head, []).append((rest, build_layer(layer, shapes[name], shapes, rngs, dtype)))
        if task.aux_head is not None:
            aux = task.aux_head.layer.name or "aux"
            modules[aux] = [("", nnx.Linear(features_shape(task)[-1], task.aux_head.layer.units, dtype=jnp.float32,
                                            rngs=rngs))]
        for head, members in modules.items():
            if [rest for rest, _ in members] == [""]:
                setattr(self, head, members[0][1])
            elif [rest for rest, _ in members] == [str(i) for i in range(len(members))]:
                setattr(self, head, nnx.List([m for _, m in members]))
            else:
                names = [f"{head}.{r}" for r, _ in members]
                raise unsupported(f"layer names {names} (not 0..n-1 under one name)", "jax")
        self.order = tuple(name for name, _ in layers)
        self.acts = tuple(getattr(layer, "activation", None) for _, layer in layers)
        self.aux_name = (task.aux_head.layer.name or "aux") if task.aux_head else None
        self.features_end = self.order.index(task.aux_head.after) + 1 if task.aux_head else len(self.order)

    def module(self, name: str) -> Any:
        head, _, index = name.partition(".")
        found = getattr(self, head)
        return found[int(index)] if index else found

    def _run(self, x: jax.Array, end: int, train: bool) -> jax.Array:
        for name, act in zip(self.order[:end], self.acts[:end]):
            m = self.module(name)
            x = m(x, deterministic=not train) if isinstance(m, nnx.Dropout) else m(x)
            if act is not None:
                x = _ACTIVATIONS[act](x)
        return x

    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        # A static flag, not model.train(), which would also switch BatchNorm to batch statistics.
        return self._run(x, len(self.order), train)

    def features(self, x: jax.Array) -> jax.Array:
        """What the auxiliary head reads: the output of its `after` layer."""
        return self._run(x, self.features_end, False)

    def aux_logits(self, x: jax.Array) -> jax.Array:
        assert self.aux_name is not None, "this task has no auxiliary head"
        return self.module(self.aux_name)(self.features(x))


def dropouts(model: Net) -> list[nnx.Dropout]:
    """The model's Dropout layers in forward order (their construction order)."""
    return [m for m in (model.module(n) for n in model.order) if isinstance(m, nnx.Dropout)]


def neutral_name(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path if p != "conv")

"""The spec's layer list as a Flax NNX module (NHWC, (in, out) and HWIO: the neutral layout)."""
from __future__ import annotations

import jax
import optax
from flax import nnx

from bench.adapter import unsupported
from bench.spec import Adam, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RMSprop, TaskSpec, layer_shapes

_ACTIVATIONS = {None: None, "relu": jax.nn.relu}


class _Pool(nnx.Module):
    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, x: jax.Array) -> jax.Array:
        return nnx.max_pool(x, (self.size, self.size), strides=(self.size, self.size), padding="VALID")


class _Flatten(nnx.Module):
    def __call__(self, x: jax.Array) -> jax.Array:
        return x.reshape(x.shape[0], -1)  # H, W, C order: the neutral order


class SpecNet(nnx.Module):
    """Block i is the spec's layer i, so neutral names `layers.<i>.*` map straight onto it."""

    def __init__(self, task: TaskSpec, rngs: nnx.Rngs) -> None:
        blocks = []
        acts = []
        prev = task.input_shape
        for layer, shape in zip(task.layers, layer_shapes(task)):
            act = getattr(layer, "activation", None)
            if act not in _ACTIVATIONS:
                raise unsupported(f"activation {act!r}", "jax")
            if isinstance(layer, Dense):
                blocks.append(nnx.Linear(prev[0], layer.units, rngs=rngs))
            elif isinstance(layer, Conv2D):
                blocks.append(nnx.Conv(prev[-1], layer.filters, (layer.kernel, layer.kernel),
                                       strides=(layer.stride, layer.stride), padding=layer.padding.upper(), rngs=rngs))
            elif isinstance(layer, MaxPool2D):
                blocks.append(_Pool(layer.size))
            elif isinstance(layer, Flatten):
                blocks.append(_Flatten())
            elif isinstance(layer, Dropout):
                blocks.append(nnx.Dropout(layer.rate, rngs=rngs))
            else:
                raise unsupported(type(layer).__name__, "jax")
            acts.append(act)
            prev = shape
        self.layers = nnx.List(blocks)
        self.acts = tuple(acts)

    def __call__(self, x: jax.Array) -> jax.Array:
        for block, act in zip(self.layers, self.acts):
            x = block(x)
            if act is not None:
                x = _ACTIVATIONS[act](x)
        return x


def build_tx(spec: object) -> optax.GradientTransformation:
    if isinstance(spec, RMSprop):
        # optax's rmsprop with eps_in_sqrt=True is the spec's (and Keras') rule.
        return optax.rmsprop(spec.lr, decay=spec.rho, eps=spec.eps, initial_scale=0.0, eps_in_sqrt=True,
                             centered=spec.centered, momentum=spec.momentum or None, bias_correction=False)
    if isinstance(spec, Adam):
        return optax.adam(spec.lr, b1=spec.beta1, b2=spec.beta2, eps=spec.eps, eps_root=0.0)
    raise unsupported(type(spec).__name__, "jax")


def loss_fn(logits: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

"""The spec's layer list as a Flax NNX module (NHWC, (in, out) and HWIO: the neutral layout)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from bench.adapter import unsupported
from bench.shapes import layer_shapes
from bench.spec import Adam, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RMSprop, TaskSpec
from impls.jax import optim

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

    def __init__(self, task: TaskSpec, rngs: nnx.Rngs, precision: str = "fp32") -> None:
        blocks = []
        acts = []
        prev = task.input_shape
        last = len(task.layers) - 1
        for i, (layer, shape) in enumerate(zip(task.layers, layer_shapes(task))):
            act = getattr(layer, "activation", None)
            if act not in _ACTIVATIONS:
                raise unsupported(f"activation {act!r}", "jax")
            # bf16: compute in bfloat16 from float32 parameters; the output layer (logits) in float32.
            dtype = jnp.bfloat16 if precision == "bf16" and i != last else None
            if isinstance(layer, Dense):
                blocks.append(nnx.Linear(prev[0], layer.units, dtype=dtype or jnp.float32, param_dtype=jnp.float32,
                                         rngs=rngs))
            elif isinstance(layer, Conv2D):
                blocks.append(nnx.Conv(prev[-1], layer.filters, (layer.kernel, layer.kernel),
                                       strides=(layer.stride, layer.stride), padding=layer.padding.upper(),
                                       dtype=dtype or jnp.float32, param_dtype=jnp.float32, rngs=rngs))
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
        # Not optax.adam: its float32 bias correction makes every step ~6e-6 too long (impls/jax/optim.py).
        return optim.adam(spec.lr, b1=spec.beta1, b2=spec.beta2, eps=spec.eps)
    raise unsupported(type(spec).__name__, "jax")


def loss_fn(logits: jax.Array, y: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

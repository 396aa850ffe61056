"""The spec's layer list as a Keras 3 model (NHWC and (in, out) kernels: the neutral layout)."""
from __future__ import annotations

import contextlib
import math
from typing import Iterator

import keras

from bench.adapter import unsupported
from bench.spec import Adam, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RMSprop, TaskSpec


@contextlib.contextmanager
def dtype_policy(precision: str) -> Iterator[None]:
    """Layers built inside take Keras' mixed_bfloat16 policy for bf16 (bf16 compute, float32 variables);
    the global policy is restored afterwards, so one build never leaks into the next."""
    before = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bf16" else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(before)


def build_model(task: TaskSpec, precision: str = "fp32") -> tuple[keras.Model, dict[int, keras.layers.Layer]]:
    """The model and, for each spec layer index with weights, its Keras layer (bf16: mixed precision,
    the output layer in float32 so logits and loss are float32, as the Keras mixed-precision guide does)."""
    with dtype_policy(precision):
        return _build(task)


def _build(task: TaskSpec) -> tuple[keras.Model, dict[int, keras.layers.Layer]]:
    layers: list[keras.layers.Layer] = []
    weighted: dict[int, keras.layers.Layer] = {}
    last = len(task.layers) - 1
    for i, layer in enumerate(task.layers):
        if isinstance(layer, Dense):
            k = keras.layers.Dense(layer.units, activation=layer.activation, dtype="float32" if i == last else None)
            weighted[i] = k
        elif isinstance(layer, Conv2D):
            k = keras.layers.Conv2D(layer.filters, layer.kernel, strides=layer.stride,
                                    padding=layer.padding, activation=layer.activation)
            weighted[i] = k
        elif isinstance(layer, MaxPool2D):
            k = keras.layers.MaxPooling2D(layer.size)
        elif isinstance(layer, Flatten):
            k = keras.layers.Flatten()
        elif isinstance(layer, Dropout):
            k = keras.layers.Dropout(layer.rate)
        else:
            raise unsupported(type(layer).__name__, "tf")
        layers.append(k)
    model = keras.Sequential([keras.Input(shape=task.input_shape), *layers])
    return model, weighted


class KingmaBaAdam(keras.optimizers.Adam):
    """Adam with eps added after bias correction (torch/optax and the paper), in accurate float32.

    Keras' own Adam adds eps to sqrt(v) before correcting it ("epsilon hat"), a different rule for
    the same hyper-parameters; the spec names this one. 1 - b**t is -expm1(t log b) with log b from
    float64, and 1 - b is taken in float64 before the cast (as torch does): float32 powers of the
    rounded b made every early step ~6e-7 shorter than the spec's (the JAX fix: impls/jax/optim.py).
    """

    def update_step(self, gradient, variable, learning_rate):  # type: ignore[override]
        ops = keras.ops
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        g = ops.cast(gradient, dtype)
        t = ops.cast(self.iterations + 1, dtype)
        b1, b2 = float(self.beta_1), float(self.beta_2)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, b1 * m + (1.0 - b1) * g)
        self.assign(v, b2 * v + (1.0 - b2) * ops.square(g))
        m_hat = m / -ops.expm1(t * math.log(b1))
        v_hat = v / -ops.expm1(t * math.log(b2))
        self.assign_sub(variable, lr * m_hat / (ops.sqrt(v_hat) + self.epsilon))


def build_optimizer(spec: object) -> keras.optimizers.Optimizer:
    if isinstance(spec, RMSprop):
        # Keras' RMSprop is the spec's rule (eps inside the sqrt); every default is overridden.
        return keras.optimizers.RMSprop(learning_rate=spec.lr, rho=spec.rho, momentum=spec.momentum,
                                        epsilon=spec.eps, centered=spec.centered)
    if isinstance(spec, Adam):
        return KingmaBaAdam(learning_rate=spec.lr, beta_1=spec.beta1, beta_2=spec.beta2,
                            epsilon=spec.eps, amsgrad=False)
    raise unsupported(type(spec).__name__, "tf")

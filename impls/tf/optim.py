"""The spec's optimizers in Keras 3: SGD, Adagrad and RMSprop as Keras has them, Adam and AdamW with the
spec's epsilon placement."""
from __future__ import annotations

import math
import os
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import keras

from bench.harness.adapter import unsupported
from bench.spec import SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop


class KingmaBaAdam(keras.optimizers.Adam):
    """Adam with eps added after bias correction (torch/optax and the paper), in accurate float32.

    Keras' own Adam adds eps to sqrt(v) before correcting it ("epsilon hat"), a different rule for
    the same hyper-parameters; the spec names this one. 1 - b**t is -expm1(t log b) with log b from
    float64, and 1 - b is taken in float64 before the cast (as torch does): float32 powers of the
    rounded b make the early steps systematically shorter than the spec's (as in impls/jax/optim.py).
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
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


def build_optimizer(spec: Optimizer) -> keras.optimizers.Optimizer:
    """The spec's update rule, every Keras default overridden."""
    if isinstance(spec, SGD):
        # Keras keeps v' = mu*v' - lr*g (= -lr * the spec's v): the same weights under a constant lr.
        return keras.optimizers.SGD(learning_rate=spec.lr, momentum=spec.momentum, nesterov=spec.nesterov,
                                    weight_decay=None)
    if isinstance(spec, Adagrad):
        # Keras' Adagrad is the spec's rule (accumulator from initial_accumulator, eps inside the sqrt).
        return keras.optimizers.Adagrad(learning_rate=spec.lr, initial_accumulator_value=spec.initial_accumulator,
                                        epsilon=spec.eps, weight_decay=None)
    if isinstance(spec, RMSprop):
        # Keras' RMSprop is the spec's rule (eps inside the sqrt).
        return keras.optimizers.RMSprop(learning_rate=spec.lr, rho=spec.rho, momentum=spec.momentum,
                                        epsilon=spec.eps, centered=spec.centered, weight_decay=None)
    if isinstance(spec, Adam):
        return KingmaBaAdam(learning_rate=spec.lr, beta_1=spec.beta1, beta_2=spec.beta2, epsilon=spec.eps,
                            amsgrad=False, weight_decay=None)
    if isinstance(spec, AdamW):
        # Keras' base optimizer applies w -= w*wd*lr to every trainable variable before update_step:
        # the spec's decoupled decay; KingmaBaAdam (not keras.optimizers.AdamW) for the epsilon placement.
        return KingmaBaAdam(learning_rate=spec.lr, beta_1=spec.beta1, beta_2=spec.beta2, epsilon=spec.eps,
                            amsgrad=False, weight_decay=spec.weight_decay)
    raise unsupported(type(spec).__name__, "tf")

"""The spec's layer list as a Keras 3 model (NHWC and (in, out) kernels: the neutral layout)."""
from __future__ import annotations

import keras

from bench.adapter import unsupported
from bench.spec import Adam, Conv2D, Dense, Dropout, Flatten, MaxPool2D, RMSprop, TaskSpec


def build_model(task: TaskSpec) -> tuple[keras.Model, dict[int, keras.layers.Layer]]:
    """The model and, for each spec layer index with weights, its Keras layer."""
    layers: list[keras.layers.Layer] = []
    weighted: dict[int, keras.layers.Layer] = {}
    for i, layer in enumerate(task.layers):
        if isinstance(layer, Dense):
            k = keras.layers.Dense(layer.units, activation=layer.activation)
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
    """Adam with eps added after bias correction (torch/optax and the paper).

    Keras' own Adam adds eps to sqrt(v) before correcting it ("epsilon hat"), a different
    rule for the same hyper-parameters; the spec names this one.
    """

    def update_step(self, gradient, variable, learning_rate):  # type: ignore[override]
        ops = keras.ops
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        t = ops.cast(self.iterations + 1, variable.dtype)
        b1 = ops.cast(self.beta_1, variable.dtype)
        b2 = ops.cast(self.beta_2, variable.dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, b1 * m + (1 - b1) * g)
        self.assign(v, b2 * v + (1 - b2) * ops.square(g))
        m_hat = m / (1 - ops.power(b1, t))
        v_hat = v / (1 - ops.power(b2, t))
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

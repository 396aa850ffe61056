"""The spec's layer list as one Keras 3 functional model (NHWC, (in, out) and HWIO kernels: the neutral layout)."""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import keras

from bench.harness.adapter import unsupported
from bench.spec import Conv2D, ConvBN, Dense, Dropout, Flatten, GlobalAvgPool, Layer, MaxPool2D, MBConv, TaskSpec
from bench.spec.shapes import features_shape, named_layers


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


@keras.saving.register_keras_serializable(package="bench")  # so a saved .keras model loads it by name
class FrozenBatchNormalization(keras.layers.BatchNormalization):
    """BatchNorm always in inference mode, whatever `training` the model is called with: the moving
    statistics are used and never updated, while gamma/beta still get gradients where trainable."""

    def call(self, inputs: Any, training: Any = None, mask: Any = None) -> Any:
        return super().call(inputs, training=False, mask=mask)


def _keras_name(neutral: str) -> str:
    return neutral.replace(".", "_")  # Keras layer names are also variable paths: no dots


@dataclass
class Built:
    """The model (input -> logits), the auxiliary head's input model and layer, and every neutral tensor
    with the Keras layer that owns it (Keras freezes whole layers)."""

    model: Any = None  # keras.Model, set once the layers are walked
    features: keras.Model | None = None
    aux: keras.layers.Layer | None = None
    variables: dict[str, keras.Variable] = field(default_factory=dict)
    owners: dict[str, keras.layers.Layer] = field(default_factory=dict)

    def register(self, prefix: str, layer: keras.layers.Layer, names: dict[str, keras.Variable]) -> None:
        for n, v in names.items():
            self.variables[f"{prefix}.{n}"], self.owners[f"{prefix}.{n}"] = v, layer


def _conv_bn(c: ConvBN, x: Any, built: Built) -> Any:
    if c.depthwise:
        conv = keras.layers.DepthwiseConv2D(c.kernel, c.stride, padding="same", use_bias=False,
                                            name=_keras_name(c.name))
    else:
        conv = keras.layers.Conv2D(c.filters, c.kernel, c.stride, padding="same", use_bias=False,
                                   name=_keras_name(c.name))
    bn = FrozenBatchNormalization(epsilon=c.eps, name=_keras_name(c.name + ".bn"))
    x = bn(conv(x))
    built.register(c.name, conv, {"kernel": conv.kernel})
    built.register(c.name + ".bn", bn, {"scale": bn.gamma, "bias": bn.beta, "mean": bn.moving_mean,
                                        "var": bn.moving_variance})
    if c.act == "relu6":
        return keras.layers.ReLU(6.0)(x)
    if c.act is not None:
        raise unsupported(f"activation {c.act!r}", "tf")
    return x


def _layer(name: str, layer: Layer, x: Any, built: Built, last: bool) -> Any:
    """Apply one spec layer to the symbolic tensor x; the output layer computes in float32."""
    kname = _keras_name(name)
    if isinstance(layer, ConvBN):
        return _conv_bn(layer, x, built)
    if isinstance(layer, MBConv):
        h = _conv_bn(layer.expand, x, built) if layer.expand is not None else x
        h = _conv_bn(layer.project, _conv_bn(layer.depthwise, h, built), built)
        return keras.layers.Add(name=_keras_name(name + ".add"))([x, h]) if layer.residual else h
    if isinstance(layer, Dense):
        k = keras.layers.Dense(layer.units, activation=layer.activation, name=kname, dtype="float32" if last else None)
    elif isinstance(layer, Conv2D):
        k = keras.layers.Conv2D(layer.filters, layer.kernel, strides=layer.stride, padding=layer.padding,
                                activation=layer.activation, name=kname)
    elif isinstance(layer, MaxPool2D):
        k = keras.layers.MaxPooling2D(layer.size, name=kname)
    elif isinstance(layer, Flatten):
        k = keras.layers.Flatten(name=kname)
    elif isinstance(layer, GlobalAvgPool):
        k = keras.layers.GlobalAveragePooling2D(name=kname)
    elif isinstance(layer, Dropout):
        k = keras.layers.Dropout(layer.rate, name=kname)
    else:
        raise unsupported(type(layer).__name__, "tf")
    y = k(x)
    if isinstance(layer, (Dense, Conv2D)):
        built.register(name, k, {"kernel": k.kernel, "bias": k.bias})
    return y


def build_model(task: TaskSpec, precision: str) -> Built:
    """Walk the spec's layers into a functional model (bf16: Keras' mixed policy, float32 heads)."""
    with dtype_policy(precision):
        inputs = keras.Input(shape=task.input_shape)
        built = Built()
        x, features = inputs, None
        layers = named_layers(task)
        for i, (name, layer) in enumerate(layers):
            x = _layer(name, layer, x, built, last=i == len(layers) - 1)
            if task.aux_head is not None and name == task.aux_head.after:
                features = x
        built.model = keras.Model(inputs, x, name=task.name)
        if task.aux_head is not None:
            head = task.aux_head.layer
            built.features = keras.Model(inputs, features, name=f"{task.name}_features")
            built.aux = keras.layers.Dense(head.units, name=_keras_name(head.name or "aux"), dtype="float32")
            built.aux.build((None, features_shape(task)[-1]))
            built.register(head.name or "aux", built.aux, {"kernel": built.aux.kernel, "bias": built.aux.bias})
    return built

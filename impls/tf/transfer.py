"""TensorFlow/Keras 3 adapter for the transfer task: EfficientNet-Lite walked from the spec, frozen BN, phases."""
from __future__ import annotations

import os
from typing import ClassVar

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.adapter import unsupported  # noqa: E402
from bench.vision import BACKBONES, ConvBN, TransferTaskSpec, is_trainable, transfer_shapes  # noqa: E402
from impls.tf import adapter as mnist  # noqa: E402
from impls.tf.models import build_optimizer, dtype_policy  # noqa: E402




def _layer_name(neutral: str) -> str:
    return neutral.replace(".", "_")  # Keras layer names are also variable paths: no dots


class Adapter(mnist.Adapter):
    """Shares versions/sync/device_name/device_peak_bytes with the MNIST adapter (they read self.on_gpu)."""

    name: ClassVar[str] = "tf"

    def build(  # type: ignore[override]
        self, task: TransferTaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
        mode: str = "default", precision: str = "fp32",
    ) -> None:
        self.tf_device = mnist.select_device(device)
        self.on_gpu = device == "gpu"
        self.jit, self._settings = mnist.configure(device, mode, precision)
        self.task = task
        bb = BACKBONES[task.backbone]
        self.shapes = transfer_shapes(task)
        # neutral name -> Keras variable, and the layer owning it (layer.trainable is set per phase)
        self.vars: dict[str, keras.Variable] = {}
        self.owner: dict[str, keras.layers.Layer] = {}

        def register(prefix: str, layer: keras.layers.Layer, names: dict[str, keras.Variable]) -> None:
            for n, v in names.items():
                self.vars[f"{prefix}.{n}"], self.owner[f"{prefix}.{n}"] = v, layer

        def conv_bn(c: ConvBN, x: keras.KerasTensor) -> keras.KerasTensor:
            if c.depthwise:
                conv = keras.layers.DepthwiseConv2D(c.kernel, c.stride, padding="same", use_bias=False,
                                                    name=_layer_name(c.name))
            else:
                conv = keras.layers.Conv2D(c.filters, c.kernel, c.stride, padding="same", use_bias=False,
                                           name=_layer_name(c.name))
            bn = keras.layers.BatchNormalization(epsilon=bb.bn_eps, name=_layer_name(c.name + ".bn"))
            # training=False always: moving statistics are used and never updated, in every phase,
            # while gamma/beta still receive gradients where the layer is trainable.
            x = bn(conv(x), training=False)
            register(c.name, conv, {"kernel": conv.kernel})
            register(c.name + ".bn", bn, {"scale": bn.gamma, "bias": bn.beta,
                                         "mean": bn.moving_mean, "var": bn.moving_variance})
            if c.act == "relu6":
                return keras.layers.ReLU(6.0)(x)
            if c.act is not None:
                raise unsupported(f"activation {c.act!r}", "tf")
            return x

        # bf16: Keras' mixed_bfloat16 policy for every layer built here, the two Dense heads in float32.
        with tf.device(self.tf_device), dtype_policy(precision):
            inputs = keras.Input(shape=task.input_shape)
            x = conv_bn(bb.stem, inputs)
            for b in bb.blocks:
                h = conv_bn(b.expand, x) if b.expand is not None else x
                h = conv_bn(b.project, conv_bn(b.depthwise, h))
                x = keras.layers.Add(name=_layer_name(b.name + ".add"))([x, h]) if b.residual else h
            features = keras.layers.GlobalAveragePooling2D()(conv_bn(bb.head, x))
            self.backbone = keras.Model(inputs, features, name=bb.name)
            self.dropout = keras.layers.Dropout(task.head_dropout, seed=seed)  # seed only drives dropout
            self.top = keras.layers.Dense(1, name="top", dtype="float32")
            self.imagenet = keras.layers.Dense(bb.imagenet_classes, name="imagenet", dtype="float32")
            for head in (self.top, self.imagenet):
                head.build((None, bb.features))
                register(head.name, head, {"kernel": head.kernel, "bias": head.bias})
            if self.vars.keys() != self.shapes.keys():
                raise RuntimeError(f"impls/tf builds {sorted(self.vars.keys() ^ self.shapes.keys())[:3]} "
                                   "differently from the spec")
            for k, v in self.vars.items():
                # Same element order in both layouts; only depthwise differs, (k,k,1,C) vs Keras' (k,k,C,1),
                # and moving a size-1 axis is a pure reshape.
                v.assign(weights[k].reshape(v.shape))
        for layer in {id(v): v for v in self.owner.values()}.values():
            layer.trainable = False  # no phase yet: nothing trains
        self.train_vars: list[keras.Variable] = []
        backbone, top, imagenet = self.backbone, self.top, self.imagenet
        # mode "default": XLA only on GPU, as the MNIST adapter (XLA:CPU convs are far slower than oneDNN).
        self._predict = tf.function(lambda x: top(backbone(x, training=False)), jit_compile=self.jit)
        self._predict_imagenet = tf.function(lambda x: imagenet(backbone(x, training=False)),
                                             jit_compile=self.jit)

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        train = {k for k in self.vars if is_trainable(k, phase.trainable) and not k.startswith("imagenet.")}
        layers: dict[int, tuple[keras.layers.Layer, set[bool]]] = {}
        for k, layer in self.owner.items():
            if not k.endswith((".bn.mean", ".bn.var")):  # statistics are non-trainable variables anyway
                layers.setdefault(id(layer), (layer, set()))[1].add(k in train)
        for layer, flags in layers.values():
            if len(flags) > 1:  # Keras freezes whole layers; a prefix splitting one would be miscounted
                raise unsupported(f"phase {phase.name!r} freezing part of layer {layer.name}", "tf")
            layer.trainable = flags.pop()
        # Keras' own view of what trains (frozen layers report no trainable weights) must be the spec's set.
        self.train_vars = [*self.backbone.trainable_weights, *self.top.trainable_weights]
        if {id(v) for v in self.train_vars} != {id(self.vars[k]) for k in train}:
            raise RuntimeError(f"Keras' trainable weights differ from the spec's in phase {phase.name!r}")
        backbone, dropout, top, train_vars = self.backbone, self.dropout, self.top, self.train_vars
        with tf.device(self.tf_device):
            opt = build_optimizer(phase.optimizer)  # fresh Adam state per phase
            opt.build(train_vars)  # slot variables outside tf.function
        handles = [v.value for v in train_vars]  # the tf.Variables inside: what a tape can watch

        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            # Only the phase's variables are watched, so the tape records no op of the frozen
            # part below them: phase 0 backpropagates through the Dense head alone.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(handles)
                logit = top(dropout(backbone(x, training=False), training=True))[:, 0]
                loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logit))
            opt.apply_gradients(zip(tape.gradient(loss, handles), train_vars))
            return loss

        # A new function per phase: the captured variable list and optimizer changed.
        self._step = tf.function(step, jit_compile=self.jit)

    def trainable_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.train_vars))

    def param_count(self) -> int:
        return int(sum(np.prod(v.shape) for k, v in self.vars.items()
                       if not k.startswith("imagenet.") and not k.endswith((".bn.mean", ".bn.var"))))

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tf.Tensor:
        with tf.device(self.tf_device):
            return self._step(tf.constant(x), tf.constant(y, tf.float32))

    def predict(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self.tf_device):
            return np.array(self._predict(tf.constant(x)), dtype=np.float32)

    def predict_imagenet(self, x: np.ndarray) -> np.ndarray:
        with tf.device(self.tf_device):
            return np.array(self._predict_imagenet(tf.constant(x)), dtype=np.float32)

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.numpy()).reshape(self.shapes[k]) for k, v in self.vars.items()}

"""TensorFlow/Keras 3 adapter: one tf.function train step per phase, with or without XLA, fp32 (TF32 off) or bf16;
data-parallel under tf.distribute.MirroredStrategy (impls/tf/parallel.py)."""
from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before keras is first imported: it reads this once

import keras
import numpy as np
import tensorflow as tf

from bench.harness.adapter import check_names, unsupported
from bench.spec import LossType, TaskSpec
from bench.spec.shapes import BN_STATISTICS, is_trainable, weight_shapes
from impls.tf.device import configure, device_memory, device_name, reset_device_peak, select_device
from impls.tf.layers import build_model
from impls.tf.optim import build_optimizer
from impls.tf.parallel import distributed_step, mirrored, own_dropout_streams, replica_loss
from impls.tf.resident import DATA_PARALLEL, copy_batch, copy_order, gathered


def loss_fn(loss: LossType, per_example: bool = False) -> tuple[Callable[[Any, Any], Any], tf.DType]:
    """The task's loss (labels first, as Keras losses take them), the batch mean or one value per example,
    and the dtype its labels take."""
    if loss is LossType.SIGMOID_BINARY_CROSS_ENTROPY:
        def bce(y: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
            values = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits[:, 0])
            return values if per_example else tf.reduce_mean(values)

        return bce, tf.float32
    # Keras' mean reduction divides by the replica count under a tf.distribute strategy: per example, it does not.
    reduction = None if per_example else "sum_over_batch_size"
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction=reduction), tf.int32


class Adapter:
    name: ClassVar[str] = "tf"

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__}

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32", devices: int = 1) -> None:
        self.tf_device = select_device(device, devices)
        self.on_gpu, self.devices = device == "gpu", devices
        self.jit, self._settings = configure(device, mode, precision)
        self.strategy: tf.distribute.Strategy | None = None
        if devices > 1:
            self.strategy, self._settings["launcher"] = mirrored(device, devices, self.jit)
        keras.utils.set_random_seed(seed)  # dropout only: weights come from the file
        self.task, self.shapes = task, weight_shapes(task)
        self.loss, self.label_dtype = loss_fn(task.loss)
        with self._scope():  # under a strategy: MirroredVariables, assigned on every device
            self.built = build_model(task, precision)
            check_names("tf", task, set(self.built.variables))
            for k, v in self.built.variables.items():
                # Same element order in both layouts; only depthwise differs, (k,k,1,C) vs Keras' (k,k,C,1),
                # and moving a size-1 axis is a pure reshape.
                v.assign(weights[k].reshape(v.shape))
            if self.strategy is not None:
                own_dropout_streams(self.built.model)
        for layer in {id(v): v for v in self.built.owners.values()}.values():
            layer.trainable = False  # no phase yet: nothing trains
        self.train_vars: list[keras.Variable] = []
        model, features, aux = self.built.model, self.built.features, self.built.aux
        # mode "default" is Keras' jit_compile="auto": XLA on GPU only (XLA:CPU convs are far slower than oneDNN).
        self._predict = tf.function(lambda x: model(x, training=False), jit_compile=self.jit)
        self._predict_aux = (tf.function(lambda x: aux(features(x, training=False)), jit_compile=self.jit)
                             if aux is not None else None)
        self._predict_features = tf.function(lambda x: features(x, training=False), jit_compile=self.jit)
        self.step: Any = None
        self.step_at: Any = None

    def set_phase(self, index: int) -> None:
        phase = self.task.phases[index]
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        train = {k for k in self.built.variables if is_trainable(k, phase.trainable) and not k.startswith(f"{aux}.")}
        layers: dict[int, tuple[keras.layers.Layer, set[bool]]] = {}
        for k, layer in self.built.owners.items():
            if not k.endswith(BN_STATISTICS):  # statistics are non-trainable variables anyway
                layers.setdefault(id(layer), (layer, set()))[1].add(k in train)
        for layer, flags in layers.values():
            if len(flags) > 1:  # Keras freezes whole layers; a prefix splitting one would be miscounted
                raise unsupported(f"phase {phase.name!r} freezing part of layer {layer.name}", "tf")
            layer.trainable = flags.pop()
        # Keras' own view of what trains (frozen layers report no trainable weights) must be the spec's set.
        self.train_vars = list(self.built.model.trainable_weights)
        if {id(v) for v in self.train_vars} != {id(self.built.variables[k]) for k in train}:
            raise RuntimeError(f"Keras' trainable weights differ from the spec's in phase {phase.name!r}")
        with self._scope():  # a Keras optimizer binds the strategy current at its construction
            opt = build_optimizer(phase.optimizer)  # a fresh optimizer state per phase
            opt.build(self.train_vars)  # slot variables outside tf.function
        # A new function: the captured variables changed.
        if self.strategy is None:
            self.step = tf.function(self._step_fn(opt), jit_compile=self.jit)
            # The resident step: the same body and optimizer, its batch gathered on the device.
            self.step_at = tf.function(gathered(self._step_fn(opt), self.task.batch_size), jit_compile=self.jit)
        else:
            self.step = tf.function(distributed_step(self.strategy, self._step_fn(opt), self.jit))

    def _scope(self) -> contextlib.AbstractContextManager[Any]:
        """Where variables are made: the strategy's scope, else the one device."""
        return self.strategy.scope() if self.strategy is not None else tf.device(self.tf_device)

    def _step_fn(self, opt: keras.optimizers.Optimizer) -> Callable[[tf.Tensor, tf.Tensor], tf.Tensor]:
        model, train_vars = self.built.model, self.train_vars
        # Under a strategy, each replica's share of the global-batch mean (parallel.py).
        task_loss = self.loss if self.strategy is None else replica_loss(loss_fn(self.task.loss, per_example=True)[0])
        handles = [v.value for v in train_vars]  # the tf.Variables inside: what a tape can watch

        def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
            # Only the phase's variables are watched, so the tape records no op of the frozen part
            # below them: feature extraction backpropagates through the head alone.
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(handles)
                loss = task_loss(y, model(x, training=True))
            opt.apply_gradients(zip(tape.gradient(loss, handles), train_vars))
            return loss

        return step

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def param_count(self) -> int:
        aux = self.task.aux_head.layer.name if self.task.aux_head else None
        return int(sum(np.prod(v.shape) for k, v in self.built.variables.items()
                       if not k.startswith(f"{aux}.") and not k.endswith(BN_STATISTICS)))

    def trainable_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.train_vars))

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tf.Tensor:
        if self.step is None:
            raise RuntimeError("set_phase() must be called before train_step()")
        with tf.device(self.tf_device):
            # tf.constant returns a to_device() tensor as it is (same dtype), and copies a NumPy array.
            return self.step(tf.constant(x), tf.constant(y, self.label_dtype))

    def _one_device(self) -> None:
        if self.strategy is not None:  # the harness uses the resident path for one-device cells only
            raise NotImplementedError(DATA_PARALLEL)

    def put_train(self, x: np.ndarray, y: np.ndarray) -> None:
        self._one_device()
        self.resident = copy_batch(self.tf_device, x, y, self.label_dtype)

    def set_order(self, order: np.ndarray) -> None:
        self._one_device()
        self.order = copy_order(self.tf_device, order)

    def train_step_at(self, i: int) -> tf.Tensor:
        self._one_device()
        if self.step_at is None:
            raise RuntimeError("set_phase() must be called before train_step_at()")
        with tf.device(self.tf_device):
            return self.step_at(*self.resident, self.order, tf.constant(i, tf.int32))  # a tensor i: one trace

    def to_device(self, x: np.ndarray, y: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
        return copy_batch(self.tf_device, x, y, self.label_dtype)

    def mark(self, out: tf.Tensor) -> tf.Tensor:
        return out  # the loss tensor: ready exactly when its step is

    def wait(self, token: tf.Tensor) -> None:
        token.numpy()  # blocks until the value exists; eager tensors are safe to read from any thread

    def logits(self, x: np.ndarray) -> tf.Tensor:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        with tf.device(self.tf_device):
            return self._predict(tf.constant(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self._numpy(self._predict, x)

    def _numpy(self, fn: Callable[[tf.Tensor], tf.Tensor], x: np.ndarray) -> np.ndarray:
        with tf.device(self.tf_device):
            return np.array(fn(tf.constant(x)), dtype=np.float32)

    def predict_features(self, x: np.ndarray) -> np.ndarray:
        return self._numpy(self._predict_features, x)

    def predict_aux(self, x: np.ndarray) -> np.ndarray:
        assert self._predict_aux is not None, "this task has no auxiliary head"
        return self._numpy(self._predict_aux, x)

    def inference(self) -> Callable[[np.ndarray], np.ndarray]:
        return self.predict  # a tf.function (XLA where the mode compiles): what predict_on_batch runs

    def formats(self) -> tuple[str, ...]:
        return ("keras",)

    def save(self, fmt: str, folder: Path) -> None:
        self.built.model.save(folder / "model.keras")  # architecture (config JSON) and weights; no optimizer

    def load(self, fmt: str, folder: Path) -> Callable[[np.ndarray], np.ndarray]:
        with tf.device(self.tf_device):
            # safe_mode: a lambda or other code in the file is refused, not run
            model = keras.saving.load_model(folder / "model.keras", compile=False, safe_mode=True)
        return functools.partial(self._numpy, tf.function(lambda x: model(x, training=False), jit_compile=self.jit))

    def get_weights(self) -> dict[str, np.ndarray]:
        return {k: np.array(v.numpy()).reshape(self.shapes[k]) for k, v in self.built.variables.items()}

    def sync(self) -> None:
        if self.on_gpu:
            tf.test.experimental.sync_devices()

    def device_name(self) -> str:
        return device_name(self.on_gpu)

    def reset_device_peak(self) -> None:
        reset_device_peak(self.on_gpu, self.devices)

    def device_memory(self) -> dict[str, int | None]:
        return device_memory(self.on_gpu, self.devices)

    def matmul_fp32(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with tf.device(self.tf_device):  # TF32 is off process-wide (select_device)
            return np.asarray(tf.linalg.matmul(tf.constant(a, tf.float32), tf.constant(b, tf.float32)), np.float32)

"""TensorFlow/Keras 3 adapter: a tf.function train step with or without XLA, fp32 (TF32 off) or mixed bf16."""
from __future__ import annotations

import os
from typing import ClassVar

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from bench.adapter import DeviceUnavailable, cpu_threads  # noqa: E402
from bench.envinfo import cpu_model  # noqa: E402
from bench.modes import check_precision, resolve_mode  # noqa: E402
from bench.spec import TaskSpec  # noqa: E402
from impls.tf.models import build_model, build_optimizer  # noqa: E402


def select_device(device: str) -> str:
    """Threads, GPU visibility and fp32 pinning for a build; returns the TF device string."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"KERAS_BACKEND is {keras.backend.backend()!r}; impls/tf needs 'tensorflow'")
    threads = cpu_threads()
    if threads:  # must happen before TF's runtime starts
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu":
        if not gpus:
            raise DeviceUnavailable("TensorFlow sees no GPU (tf.config.list_physical_devices('GPU') is empty)")
        tf_device = "/GPU:0"
    elif device == "cpu":
        tf.config.set_visible_devices([], "GPU")
        tf_device = "/CPU:0"
    else:
        raise DeviceUnavailable(f"unknown device {device!r}")
    # TF enables TF32 on Ampere+ by default; the comparison is fp32.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    return tf_device


def configure(device: str, mode: str, precision: str) -> tuple[bool, dict[str, str]]:
    """(jit_compile, the settings record) of a build (bench/modes.py)."""
    jit = resolve_mode("tf", device, mode) == "compiled"
    check_precision(precision)
    gpu = device == "gpu"
    return jit, {
        "mode": "tf.function, jit_compile=True (XLA)" if jit else "tf.function, jit_compile=False (graph, no XLA)",
        "precision": ("keras mixed_bfloat16 policy, output Dense float32, float32 variables and loss"
                      if precision == "bf16" else "float32" + (", TF32 off" if gpu else "")),
        # Read back from the environment the runner set (bench/modes.py): what this process really got.
        "autotune": (f"TF_CUDNN_USE_AUTOTUNE={os.environ.get('TF_CUDNN_USE_AUTOTUNE', 'unset (on)')}, "
                     f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}") if gpu else "none on CPU",
    }


class Adapter:
    name: ClassVar[str] = "tf"

    def versions(self) -> dict[str, str]:
        return {"tensorflow": tf.__version__, "keras": keras.__version__}

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        self.tf_device = select_device(device)
        self.on_gpu = device == "gpu"
        jit, self._settings = configure(device, mode, precision)
        keras.utils.set_random_seed(seed)  # dropout only: weights come from the file
        with tf.device(self.tf_device):
            self.model, self.weighted = build_model(task, precision)
            for i, layer in self.weighted.items():
                layer.set_weights([weights[f"layers.{i}.kernel"], weights[f"layers.{i}.bias"]])
            self.opt = build_optimizer(task.optimizer)
            self.opt.build(self.model.trainable_variables)  # variables outside tf.function
        loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        model, opt = self.model, self.opt

        def step(x, y):
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        # mode "default" is Keras' jit_compile="auto": XLA on GPU only (XLA:CPU convs are far slower than oneDNN).
        self._step = tf.function(step, jit_compile=jit)
        self._predict = tf.function(lambda x: model(x, training=False), jit_compile=jit)

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def param_count(self) -> int:
        return int(sum(np.prod(v.shape) for v in self.model.trainable_variables))

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tf.Tensor:
        with tf.device(self.tf_device):
            return self._step(tf.constant(x), tf.constant(y))

    def logits(self, x: np.ndarray) -> tf.Tensor:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        with tf.device(self.tf_device):
            return self._predict(tf.constant(x))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.array(self.logits(x), dtype=np.float32)

    def get_weights(self) -> dict[str, np.ndarray]:
        out = {}
        for i, layer in self.weighted.items():
            kernel, bias = layer.get_weights()
            out[f"layers.{i}.kernel"], out[f"layers.{i}.bias"] = kernel, bias
        return out

    def sync(self) -> None:
        if self.on_gpu:
            tf.test.experimental.sync_devices()

    def device_name(self) -> str:
        if not self.on_gpu:
            return cpu_model()
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        return str(details.get("device_name", "GPU"))

    def device_peak_bytes(self) -> int | None:
        if not self.on_gpu:
            return None
        return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])

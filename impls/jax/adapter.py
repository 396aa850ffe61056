"""JAX/Flax NNX adapter: one jitted, donated train step over the split (graphdef, state); fp32 or bf16 compute."""
from __future__ import annotations

import functools
import os
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bench.adapter import DeviceUnavailable, NotApplicable
from bench.envinfo import cpu_model
from bench.modes import JAX_EAGER, check_precision, resolve_mode
from bench.spec import TaskSpec
from impls.jax.models import SpecNet, build_tx, loss_fn


def _train(gdef_model, gdef_opt, states, x, y):
    model = nnx.merge(gdef_model, states[0])
    opt = nnx.merge(gdef_opt, states[1])
    loss, grads = nnx.value_and_grad(lambda m: loss_fn(m(x), y))(model)
    opt.update(model, grads)
    return (nnx.state(model), nnx.state(opt)), loss


def _predict(gdef_eval, model_state, x):
    return nnx.merge(gdef_eval, model_state)(x)


def select_device(device: str) -> jax.Device:
    """The JAX device of a build, with fp32 pinned (no TF32)."""
    platform = {"cpu": "cpu", "gpu": "gpu"}.get(device)
    if platform is None:
        raise DeviceUnavailable(f"unknown device {device!r}")
    try:
        chosen = jax.devices(platform)[0]
    except RuntimeError as exc:
        raise DeviceUnavailable(f"JAX sees no {device.upper()} ({exc})") from None
    # JAX (like TF) uses TF32 for fp32 matmuls/convs on Ampere+ unless told otherwise.
    jax.config.update("jax_default_matmul_precision", "highest")
    return chosen


def configure(device: str, mode: str, precision: str) -> dict[str, str]:
    """The settings record of a build; eager is refused, never faked (the cell is skipped)."""
    if resolve_mode("jax", device, mode) == "eager":
        raise NotApplicable(JAX_EAGER)
    check_precision(precision)
    return {
        "mode": "jax.jit of the whole train step (state donated)",
        "precision": ("flax.nnx layers dtype=bfloat16, param_dtype=float32; output layer and loss float32"
                      if precision == "bf16" else "float32, jax_default_matmul_precision=highest (no TF32)"),
        "autotune": f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}" if device == "gpu" else "none on CPU",
    }


class Adapter:
    name: ClassVar[str] = "jax"

    def versions(self) -> dict[str, str]:
        import flax
        import optax

        return {"jax": jax.__version__, "jaxlib": jax.lib.__version__ if hasattr(jax.lib, "__version__") else "",
                "flax": flax.__version__, "optax": optax.__version__}

    def build(self, task: TaskSpec, weights: dict[str, np.ndarray], device: str, seed: int,
              mode: str = "default", precision: str = "fp32") -> None:
        self._settings = configure(device, mode, precision)
        self.device = select_device(device)
        with jax.default_device(self.device):
            model = SpecNet(task, nnx.Rngs(params=0, dropout=seed), precision)  # dropout stream from the seed
            for name, value in weights.items():
                i, kind = int(name.split(".")[1]), name.split(".")[2]
                getattr(model.layers[i], kind)[...] = jnp.asarray(value)
            model.eval()
            self._gdef_eval = nnx.graphdef(model)  # dropout off: a different static graph
            model.train()
            opt = nnx.Optimizer(model, build_tx(task.optimizer), wrt=nnx.Param)
            gdef_model, model_state = nnx.split(model)
            gdef_opt, opt_state = nnx.split(opt)
        self.states = jax.device_put((model_state, opt_state), self.device)
        self._n_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
        # Donating the state lets XLA update parameters in place instead of copying them each step.
        self._step = jax.jit(functools.partial(_train, gdef_model, gdef_opt), donate_argnums=0)
        self._pred = jax.jit(functools.partial(_predict, self._gdef_eval))

    def settings(self) -> dict[str, str]:
        return dict(self._settings)

    def param_count(self) -> int:
        return self._n_params

    def train_step(self, x: np.ndarray, y: np.ndarray) -> jax.Array:
        # NumPy goes straight into the jitted call: its C++ dispatch copies it to the state's device for
        # ~50 us, where two jax.device_put calls cost ~170 us a step (3 % of an MNIST MLP step on CPU).
        self.states, loss = self._step(self.states, x, y)
        return loss

    def logits(self, x: np.ndarray) -> jax.Array:
        """Inference-mode logits as the framework returns them (float32 in both precisions)."""
        return self._pred(self.states[0], x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.logits(x), dtype=np.float32)

    def get_weights(self) -> dict[str, np.ndarray]:
        out = {}
        flat = nnx.to_flat_state(nnx.state(nnx.merge(self._gdef_eval, self.states[0]), nnx.Param))
        for path, var in flat:
            # path = ("layers", i, "kernel"|"bias")
            out[f"layers.{path[1]}.{path[2]}"] = np.asarray(var[...]).copy()
        return out

    def sync(self) -> None:
        # Async dispatch: block on the parameters and optimizer state, not only the loss.
        jax.block_until_ready(self.states)

    def device_name(self) -> str:
        return cpu_model() if self.device.platform == "cpu" else str(self.device.device_kind)

    def device_peak_bytes(self) -> int | None:
        if self.device.platform == "cpu":
            return None
        stats = self.device.memory_stats() or {}
        return stats.get("peak_bytes_in_use")

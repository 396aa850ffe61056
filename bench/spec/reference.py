"""NumPy float64 reference of the spec's rules (optimizers, MLP step), to hold every framework to them."""
from __future__ import annotations

import numpy as np

from bench.spec import Adam, Dense, Dropout, Flatten, Optimizer, RMSprop, TaskSpec


class ReferenceOptimizer:
    """The update rules documented on spec.RMSprop and spec.Adam, in float64."""

    VARIANTS = ("spec", "keras_adam", "torch_rmsprop")

    def __init__(self, spec: Optimizer, variant: str = "spec") -> None:
        # The other variants are the frameworks' own defaults, for tests that must tell them apart.
        assert variant in self.VARIANTS
        self.spec, self.t, self.variant = spec, 0, variant
        self.state: dict[str, dict[str, np.ndarray]] = {}

    def update(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        s = self.spec
        for k, g in grads.items():
            st = self.state.setdefault(k, {"m": np.zeros_like(g), "v": np.zeros_like(g)})
            if isinstance(s, RMSprop):
                if s.momentum or s.centered:
                    raise NotImplementedError("reference RMSprop has no momentum/centered variant")
                st["v"] = s.rho * st["v"] + (1 - s.rho) * g * g
                if self.variant == "torch_rmsprop":
                    params[k] -= s.lr * g / (np.sqrt(st["v"]) + s.eps)
                else:
                    params[k] -= s.lr * g / np.sqrt(st["v"] + s.eps)
            elif isinstance(s, Adam):
                st["m"] = s.beta1 * st["m"] + (1 - s.beta1) * g
                st["v"] = s.beta2 * st["v"] + (1 - s.beta2) * g * g
                if self.variant == "keras_adam":
                    alpha = s.lr * np.sqrt(1 - s.beta2**self.t) / (1 - s.beta1**self.t)
                    params[k] -= alpha * st["m"] / (np.sqrt(st["v"]) + s.eps)
                else:
                    m_hat = st["m"] / (1 - s.beta1**self.t)
                    v_hat = st["v"] / (1 - s.beta2**self.t)
                    params[k] -= s.lr * m_hat / (np.sqrt(v_hat) + s.eps)
            else:
                raise NotImplementedError(type(s).__name__)


def mlp_loss_and_grads(task: TaskSpec, params: dict[str, np.ndarray], x: np.ndarray,
                       y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Softmax cross-entropy and its gradients for a Flatten/Dense/ReLU stack (dropout rate 0)."""
    h = x.reshape(len(x), -1).astype(np.float64)
    cache = []
    for i, layer in enumerate(task.layers):
        if isinstance(layer, Flatten):
            continue
        if isinstance(layer, Dropout):
            if layer.rate:
                raise ValueError("the reference is deterministic: set dropout rates to 0")
            continue
        if not isinstance(layer, Dense):
            raise NotImplementedError(f"reference MLP has no {type(layer).__name__}")
        z = h @ params[f"layers.{i}.kernel"] + params[f"layers.{i}.bias"]
        cache.append((i, h, z, layer.activation))
        h = np.maximum(z, 0) if layer.activation == "relu" else z
    shifted = h - h.max(axis=1, keepdims=True)
    p = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(p[np.arange(n), y]).mean())
    grad = p
    grad[np.arange(n), y] -= 1
    grad /= n
    grads: dict[str, np.ndarray] = {}
    for i, h_in, z, act in reversed(cache):
        if act == "relu":
            grad = grad * (z > 0)
        grads[f"layers.{i}.kernel"] = h_in.T @ grad
        grads[f"layers.{i}.bias"] = grad.sum(axis=0)
        grad = grad @ params[f"layers.{i}.kernel"].T
    return loss, grads

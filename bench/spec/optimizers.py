"""Optimizer update rules, each fixed exactly: framework defaults differ (eps placement, bias
correction), so impls/<fw> override them where needed; bench/spec/reference.py holds the NumPy form."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RMSprop:
    """v = rho*v + (1-rho)*g^2;  w -= lr * g / sqrt(v + eps)   (v starts at 0, eps inside the sqrt).

    Keras' and optax's rule; torch.optim.RMSprop puts eps outside the sqrt (sqrt(1e-7) = 3e-4 vs
    1e-7: not a rounding detail), so impls/torch implements this one.
    """

    lr: float
    rho: float
    eps: float
    momentum: float = 0.0
    centered: bool = False
    name: str = "rmsprop"


@dataclass(frozen=True)
class Adam:
    """Kingma & Ba: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
    w -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).

    torch and optax use this form; Keras adds eps before the bias correction ("epsilon hat"), so
    impls/tf overrides Keras Adam's update step.
    """

    lr: float
    beta1: float
    beta2: float
    eps: float
    name: str = "adam"


Optimizer = RMSprop | Adam

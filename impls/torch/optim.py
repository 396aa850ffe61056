"""The spec's optimizers in torch: Adam as torch has it, RMSprop with eps inside the square root
(the spec's rule; torch.optim puts it outside)."""
from __future__ import annotations

import torch

from bench.harness.adapter import unsupported
from bench.spec import Adam, Optimizer, RMSprop


class RMSpropEpsInSqrt(torch.optim.Optimizer):
    """v = rho*v + (1-rho)*g^2;  w -= lr * g / sqrt(v + eps), with multi-tensor (foreach) ops."""

    def __init__(self, params, lr: float, rho: float, eps: float) -> None:
        super().__init__(params, {"lr": lr, "rho": rho, "eps": eps})

    @torch.no_grad()
    def step(self, closure: None = None) -> None:  # type: ignore[override]  # no closure: the spec's loop never passes one
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            square_avg = []
            for p in params:
                state = self.state[p]
                if "square_avg" not in state:
                    state["square_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                square_avg.append(state["square_avg"])
            torch._foreach_mul_(square_avg, group["rho"])
            torch._foreach_addcmul_(square_avg, grads, grads, value=1.0 - group["rho"])
            denom = torch._foreach_add(square_avg, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, value=-group["lr"])
        return None


def build_optimizer(spec: Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The spec's update rule over `params`, every torch default overridden."""
    if isinstance(spec, RMSprop):
        if spec.momentum or spec.centered:
            raise unsupported("RMSprop with momentum or centered", "torch")
        return RMSpropEpsInSqrt(params, lr=spec.lr, rho=spec.rho, eps=spec.eps)
    if isinstance(spec, Adam):
        # torch's Adam is the spec's (Kingma & Ba) rule.
        return torch.optim.Adam(params, lr=spec.lr, betas=(spec.beta1, spec.beta2), eps=spec.eps,
                                weight_decay=0.0, amsgrad=False, foreach=True)
    raise unsupported(type(spec).__name__, "torch")

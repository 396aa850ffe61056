"""A bare hand-written PyTorch loop over an adapter's own model and optimizer: the harness-overhead baseline."""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F


def prepare(adapter: Any, batches: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The batches as tensors on the adapter's device, once, before any timing (the ideal loop's input)."""
    return [feed(adapter, x, y) for x, y in batches]


def feed(adapter: Any, x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One NumPy batch as tensors on the adapter's device (NHWC -> NCHW view), as a hand-written loop does."""
    label_dtype = torch.float32 if hasattr(adapter, "set_phase") else torch.long  # the transfer loss takes floats
    return (torch.from_numpy(x).to(adapter.device).permute(0, 3, 1, 2),
            torch.from_numpy(y).to(adapter.device, label_dtype))


def train(adapter: Any, prepared: Iterable[tuple[Any, Any]]) -> torch.Tensor:
    """One pass of forward, loss, backward, step as a user would write it; returns the last loss, synced."""
    # adapter.forward is the model itself, or its torch.compile wrapper in --mode compiled.
    model, forward, opt = adapter.model, getattr(adapter, "forward", adapter.model), adapter.opt
    transfer = hasattr(adapter, "set_phase")
    model.train()
    for x, y in prepared:
        out = forward(x)
        loss = F.binary_cross_entropy_with_logits(out.squeeze(1), y) if transfer else F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    if adapter.device.type == "cuda":
        torch.cuda.synchronize()
    return loss.detach()

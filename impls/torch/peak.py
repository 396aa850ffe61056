"""PyTorch side of the matmul peak microbenchmark: times back-to-back square matmuls on a device."""
from __future__ import annotations

import time
from collections.abc import Callable

import torch

from impls.torch.device import pin_fp32


def matmul_timer(n: int, dtype: str, device: str) -> Callable[[int], float]:
    """A function count -> seconds for `count` (n x n) @ (n x n) products, synced before and after."""
    dev = torch.device("cuda" if device == "gpu" else "cpu")
    if dev.type == "cuda":
        pin_fp32()  # fp32 means fp32 here too: no TF32
    gen = torch.Generator().manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(dev, getattr(torch, dtype)) for _ in range(2))
    c = torch.empty_like(a)  # out=: no allocator work inside the timed loop

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def run(count: int) -> float:
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            for _ in range(count):
                torch.mm(a, b, out=c)
        sync()
        return time.perf_counter() - start

    return run

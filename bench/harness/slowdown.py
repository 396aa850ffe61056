"""A test-only hook for measuring the A/B gate: BENCH_TEST_SLOWDOWN=torch=0.10 makes torch's training
step 10 % slower, by a busy-wait of that fraction of each step call's own duration (a real, known
regression: the statistics must find it). The duration is the call's, so the fraction is exact for a
framework whose step returns when done (torch on CPU) and a fraction of the dispatch for an asynchronous
one. Never set in a real run; a record made under it says so in its settings."""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from bench.errors import UsageError

ENV = "BENCH_TEST_SLOWDOWN"


def parse(text: str) -> dict[str, float]:
    out = {}
    for item in filter(None, text.split(",")):
        fw, _, frac = item.partition("=")
        try:
            out[fw.strip()] = float(frac)
        except ValueError:
            raise UsageError(f"{ENV}: {item!r} is not FRAMEWORK=FRACTION, e.g. torch=0.10") from None
    return out


def slowed(step: Callable[..., Any], fraction: float) -> Callable[..., Any]:
    def step_then_wait(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        out = step(*args, **kwargs)
        until = time.perf_counter() + fraction * (time.perf_counter() - start)
        while time.perf_counter() < until:  # busy: a sleep would free the CPU, which no slow code does
            pass
        return out

    return step_then_wait


def apply(adapter: Any, framework: str) -> str | None:
    """Slow the adapter's train_step if the environment asks for it; the settings' words for it, or None."""
    fraction = parse(os.environ.get(ENV, "")).get(framework)
    if not fraction:
        return None
    adapter.train_step = slowed(adapter.train_step, fraction)
    adapter.train_step_at = slowed(adapter.train_step_at, fraction)  # the device-resident path's step
    return f"test hook: +{100 * fraction:g} % busy-wait per step call ({ENV})"

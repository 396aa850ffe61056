"""A test-only hook for the failure paths of data-parallel cells: BENCH_TEST_FAULT="1:kill@3" makes rank 1
SIGKILL itself at its 3rd training step call, "1:hang@3" makes it sleep there forever (a hung peer). The
step is counted from 1 over the whole cell, and the fault strikes before that call's step runs. Never set
in a real run; a record made under it says so in its settings."""
from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from typing import Any

from bench.errors import UsageError
from bench.harness import ranks

ENV = "BENCH_TEST_FAULT"
_FORMAT = re.compile(r"\s*(\d+)\s*:\s*(kill|hang)\s*@\s*(\d+)\s*")


def parse(text: str) -> tuple[int, str, int] | None:
    """(rank, kill | hang, step) from "RANK:kill@STEP" or "RANK:hang@STEP"; None for an empty value."""
    if not text.strip():
        return None
    found = _FORMAT.fullmatch(text)
    if not found or int(found.group(3)) < 1:
        raise UsageError(f"{ENV}: {text!r} is not RANK:kill@STEP or RANK:hang@STEP (STEP from 1), e.g. 1:kill@3")
    return int(found.group(1)), found.group(2), int(found.group(3))


def strike(what: str) -> None:
    if what == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    while True:  # hang: asleep, as a peer stuck outside any collective would be
        time.sleep(3600)


def faulty(steps: tuple[Callable[..., Any], ...], what: str, at: int) -> tuple[Callable[..., Any], ...]:
    """The step functions wrapped, sharing one call count."""
    calls = 0

    def wrap(step: Callable[..., Any]) -> Callable[..., Any]:
        def step_or_fault(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == at:
                strike(what)
            return step(*args, **kwargs)

        return step_or_fault

    return tuple(wrap(s) for s in steps)


def apply(adapter: Any) -> str | None:
    """Arm the fault on its rank if the environment asks for one; the settings' words for it (on every
    rank of the cell, so rank 0's record tells), or None."""
    fault = parse(os.environ.get(ENV, ""))
    if fault is None or fault[0] >= ranks.world():
        return None
    rank, what, at = fault
    if ranks.rank() == rank:
        # One count over both step calls: a cell trains on one input path, host or device-resident.
        adapter.train_step, adapter.train_step_at = faulty((adapter.train_step, adapter.train_step_at), what, at)
    action = "SIGKILLs itself" if what == "kill" else "hangs forever"
    return f"test hook: rank {rank} {action} at training step call {at} ({ENV})"

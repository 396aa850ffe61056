"""torch data-parallel cells through the real CLI: `bench run --devices 2` trains under torchrun with
DistributedDataParallel, and a rank that dies (SIGKILL) or hangs fails the cell without leaving any
process of it behind (test hook BENCH_TEST_FAULT, bench/harness/faults.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.spec import TASKS
from tests.conftest import ROOT, needs
from tests.procs import alive

pytestmark = [pytest.mark.slow, pytest.mark.torch, needs("torch"),
              pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")]

HANG_TIMEOUT_S = 90  # a healthy smoke cell on 2 ranks ends in ~25 s on a loaded 2-core machine


Ran = tuple[subprocess.CompletedProcess[str], dict[str, Any]]


def run_ddp(out: Path, *extra: str, fault: str | None = None) -> Ran:
    """`bench run --devices 2` of torch mnist_mlp, smoke; its exit and its one record."""
    env = {k: v for k, v in os.environ.items() if k != "BENCH_TEST_FAULT"}
    if fault:
        env["BENCH_TEST_FAULT"] = fault
    res = subprocess.run([sys.executable, "-m", "bench", "run", "--devices", "2", "--framework", "torch",
                          "--task", "mnist_mlp", "--profile", "smoke", "--no-inference", "--out", str(out), *extra],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    lines = (out / "records.jsonl").read_text().splitlines()
    assert len(lines) == 1, res.stderr[-3000:]
    return res, json.loads(lines[0])


def assert_none_left(out: Path) -> None:
    """No torchrun or rank of this run survives: their command lines name the run's cell file."""
    marker = str(out / "cells")
    deadline = time.monotonic() + 15  # the kernel's SIGKILL is immediate; the runner watch polls each second
    while alive(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(marker)
    for pid in left:
        os.kill(pid, 9)
    assert not left, f"processes of the run outlived it: {left}"


def test_two_devices_train_one_cell_with_ddp(tmp_path: Path) -> None:
    res, rec = run_ddp(tmp_path / "run")
    assert res.returncode == 0, res.stderr[-3000:]
    assert rec["status"] == "ok" and rec["devices"] == 2
    assert rec["per_device_batch"] == TASKS["mnist_mlp"].batch_size // 2
    assert "DistributedDataParallel" in rec["launcher"] and "launcher" not in rec["settings"]
    assert rec["test_accuracy"] > 0.7  # smoke: 2 epochs of 1 536 digits (77.5 % measured; chance is 10 %)


def test_a_killed_rank_fails_the_cell_and_ends_the_others(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res, rec = run_ddp(out, fault="1:kill@3")
    assert res.returncode == 1
    assert rec["status"] == "failed" and rec["error"].startswith("rank 1 failed first: killed by signal SIGKILL")
    assert "rank 0 saw:" in rec["error"] and "test_fault" in rec["settings"]  # rank 0's own result is kept
    assert_none_left(out)


def test_a_hung_rank_times_out_and_leaves_no_process(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res, rec = run_ddp(out, "--timeout", str(HANG_TIMEOUT_S), fault="1:hang@3")
    assert res.returncode == 1
    # Rank 0 waits in the step's all-reduce for rank 1 until the runner kills torchrun; its ranks (each
    # in its own session, out of the killed process group) die with it by PR_SET_PDEATHSIG.
    assert rec["status"] == "failed" and rec["error"].startswith(f"timed out after {HANG_TIMEOUT_S} s")
    assert_none_left(out)

"""--executor slurm against a real one-node SLURM cluster (tests/slurm/cluster.py), through the real CLI: every
cell a job, records like a local run's, and each way a job can end (cancelled, past its time limit, refused
by sbatch, pending forever, Ctrl-C) a failed cell that says so; --resume runs only what is missing."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.harness.cell import Cell
from bench.runner import RunConfig
from bench.runner.slurm import on_node
from tests.conftest import ROOT, needs
from tests.slurm.cluster import LocalCluster

SMOKE = ["--task", "mnist_mlp", "--profile", "smoke", "--no-inference", "--executor", "slurm"]
TORCH_CELL = "mnist_mlp_torch_cpu_s0"


def bench(cluster: LocalCluster, *args: str, env: dict[str, str] | None = None,
          timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bench", "run", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **cluster.env, **(env or {})})


def start(cluster: LocalCluster, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """`bench run` in the background, Ctrl-C-able (a shell without job control would pass on an ignored SIGINT)."""
    return subprocess.Popen([sys.executable, "-m", "bench", "run", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=ROOT, env={**os.environ, **cluster.env, **env},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]


def by_framework(out: Path) -> dict[str, dict]:
    return {r["framework"]: r for r in records(out)}  # the latest record of each


def wait_for_training(out: Path, cell: str = TORCH_CELL, timeout: float = 120) -> None:
    """Until the cell's job reports its training started (the events it writes in the run folder)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any('"start"' in f.read_text() for f in out.glob(f"slurm/*/{cell}.events.jsonl")):
            return
        time.sleep(0.5)
    raise AssertionError(f"{cell} did not start training within {timeout} s")


def assert_no_jobs(cluster: LocalCluster) -> None:
    deadline = time.monotonic() + 30  # a cancelled job takes a moment to leave COMPLETING
    while cluster.jobs() and time.monotonic() < deadline:
        time.sleep(1)
    assert cluster.jobs() == [], cluster.run("squeue").stdout


@pytest.mark.parametrize("marker", ["missing", "foreign"])
def test_a_node_that_cannot_see_the_run_folder_fails_the_cell_in_one_line(tmp_path, marker):
    """What the job does first, called here as its node would: no marker (or another run's) is a failed cell."""
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("torch",), devices=("cpu",), out=tmp_path)
    cell = Cell(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                weights_path=str(tmp_path / "w"), data_root=str(tmp_path), epochs=1)
    path = tmp_path / "shared-storage-check"
    if marker == "foreign":
        path.write_text("another run's token\n")
    rec = on_node(cell, cfg, str(path), "this run's token", str(tmp_path / "events.jsonl"))
    assert rec.status == "failed" and rec.task == "mnist_mlp" and rec.framework == "torch"
    assert "cannot read" in rec.error and "put --out on storage both see" in rec.error and "\n" not in rec.error


@pytest.mark.parametrize("opt,message", [("partiton=debug", "did you mean partition?"),
                                         ("time=abc", "sbatch refused the job: Invalid --time specification")])
@pytest.mark.slow
@needs("torch")
def test_bad_slurm_options(slurm_cluster, tmp_path, opt, message):
    """An option neither submitit nor sbatch knows: one line, exit 2, nothing written. One sbatch refuses:
    the cell fails with sbatch's reason."""
    out = tmp_path / "run"
    done = bench(slurm_cluster, *SMOKE, "--framework", "torch", "--out", str(out), "--slurm-opt", opt)
    if "did you mean" in message:
        assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not out.exists()
    else:
        assert done.returncode == 1, done.stderr
        assert message in by_framework(out)["torch"]["error"]


@pytest.mark.slow
@needs("torch")
@needs("jax")
def test_cells_run_as_jobs_like_local_ones_a_cancelled_one_fails_and_resume_reruns_only_it(slurm_cluster, tmp_path):
    out, local = tmp_path / "slurm", tmp_path / "local"
    run = start(slurm_cluster, *SMOKE, "--framework", "torch,jax", "--out", str(out),
                env={"BENCH_TEST_SLOWDOWN": "torch=50"})  # torch trains for ~20 s: time to cancel it
    wait_for_training(out)
    slurm_cluster.run("scancel", "--name=mnist_mlp/torch/cpu/s0", check=True)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 1, output
    first = by_framework(out)
    assert first["jax"]["status"] == "ok", first["jax"]["error"]
    assert first["torch"]["status"] == "failed" and "CANCELLED" in first["torch"]["error"], first["torch"]["error"]
    script = next(out.glob("slurm/*/*_submission.sh")).read_text()
    assert "--exclusive" in script and f"--cpus-per-task={first['jax']['threads']}" in script
    assert "--time=65" in script  # --timeout 3600 s, plus the margin that lets the cell's own timeout fire first

    again = bench(slurm_cluster, *SMOKE, "--framework", "torch,jax", "--resume", str(out))
    assert again.returncode == 0, again.stderr
    assert "1 cells (1 already done, kept)" in again.stderr
    assert [r["framework"] for r in records(out)] == ["torch", "jax", "torch"]  # jax ran once
    assert by_framework(out)["torch"]["status"] == "ok"

    done = bench(slurm_cluster, "--task", "mnist_mlp", "--profile", "smoke", "--no-inference", "--framework", "torch",
                 "--out", str(local))
    assert done.returncode == 0, done.stderr
    (mine,) = records(local)
    for rec in by_framework(out).values():  # the same schema, down to the machine description
        assert sorted(rec) == sorted(mine) and sorted(rec["env"]) == sorted(mine["env"])
    jobs = {p.name.split("_")[0] for p in out.glob("slurm/*/*_submission.sh")}
    assert {r["env"]["slurm_job"] for r in records(out)} <= jobs and mine["env"]["slurm_job"] is None
    assert_no_jobs(slurm_cluster)


@pytest.mark.slow
@needs("torch")
def test_a_job_past_its_time_limit_and_a_request_sbatch_refuses_are_failed_cells(slurm_cluster, tmp_path):
    """time=1: SLURM stops the job after a minute (it checks every 30 s), long before --timeout; the cell hangs
    at its 3rd step (a slowdown would depend on the machine's speed). The GPU cell asks for gres=gpu:1 on a
    GPU-less node: sbatch refuses it, and the run goes on."""
    out = tmp_path / "run"
    done = bench(slurm_cluster, *SMOKE, "--framework", "torch", "--device", "cpu,gpu", "--out", str(out),
                 "--slurm-opt", "time=1", "--timeout", "600", env={"BENCH_TEST_FAULT": "0:hang@3"})
    assert done.returncode == 1, done.stderr
    cells = {r["device"]: r for r in records(out)}
    assert cells["cpu"]["status"] == "failed" and "TIMEOUT" in cells["cpu"]["error"], cells["cpu"]["error"]
    assert cells["gpu"]["status"] == "failed"
    assert "sbatch refused the job: Batch job submission failed: Requested node configuration is not available" \
        in cells["gpu"]["error"]
    assert_no_jobs(slurm_cluster)


@pytest.mark.slow
@needs("torch")
def test_a_job_that_can_never_start_is_cancelled_and_its_cell_says_why(slurm_cluster, tmp_path):
    """Partition `short` allows 1 minute; SLURM accepts a 5-minute job there and would keep it pending forever
    (reason PartitionTimeLimit): the executor cancels it after a while and the run goes on."""
    out = tmp_path / "run"
    done = bench(slurm_cluster, *SMOKE, "--framework", "torch", "--out", str(out), "--slurm-opt", "partition=short",
                 "--slurm-opt", "time=5")
    assert done.returncode == 1, done.stderr
    (rec,) = records(out)
    assert rec["status"] == "failed" and "can never start" in rec["error"], rec["error"]
    assert "PartitionTimeLimit" in rec["error"] and "--slurm-opt time=" in rec["error"]
    assert rec["task"] == "mnist_mlp" and rec["spec_hash"]  # a failed record with the cell's fields
    assert_no_jobs(slurm_cluster)


@pytest.mark.slow
@needs("torch")
@needs("jax")
def test_ctrl_c_cancels_the_runs_jobs_and_records_them_as_interrupted(slurm_cluster, tmp_path):
    out = tmp_path / "run"
    run = start(slurm_cluster, *SMOKE, "--framework", "torch,jax", "--out", str(out),
                env={"BENCH_TEST_SLOWDOWN": "torch=50"})
    wait_for_training(out)
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 130, output
    assert "Ctrl-C: cancelling this run's 2 unfinished SLURM jobs" in output
    assert f"--resume {out}" in output
    recs = records(out)
    assert sorted(r["framework"] for r in recs) == ["jax", "torch"]
    assert all(r["status"] == "failed" and r["error"].startswith("interrupted by the user") for r in recs)
    assert_no_jobs(slurm_cluster)

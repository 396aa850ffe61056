"""--devices N without a framework: validation, the launch command and environment per framework, rank
CPU slices, torchrun's failure summary, the cell key and labels, and the scaling section of a report."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bench import records
from bench.cli.args import slurm_options
from bench.errors import UsageError
from bench.harness import ranks
from bench.harness.cell import Cell
from bench.records import Record
from bench.report import markdown, scaling
from bench.runner import RunConfig, plan
from bench.runner.execute import _failed_rank
from bench.runner.isolation import TORCHRUN, worker_argv, worker_env
from bench.spec import modes


def cfg(tmp_path: Path, **kw) -> RunConfig:
    base = dict(tasks=("mnist_mlp", "mnist_cnn"), frameworks=("tf", "torch", "jax"), devices=("cpu",),
                out=tmp_path, threads=2)
    return RunConfig(**{**base, **kw})


def cell(**kw) -> Cell:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                epochs=1, data_root="", weights_path="", threads=4)
    return Cell(**{**base, **kw})


@pytest.mark.parametrize("kw, words", [
    ({"n_devices": 3}, "does not divide mnist_mlp's batch of 128"),
    ({"n_devices": 0}, "outside 1..64"),
    ({"n_devices": 4, "threads": 2}, "at least one thread per device"),
    ({"executor": "pbs"}, "unknown executor 'pbs'"),
    ({"slurm_options": (("partition", "gpu"),)}, "--slurm-opt needs --executor slurm"),
])
def test_bad_parallel_options_are_one_clear_line(tmp_path, kw, words):
    with pytest.raises(UsageError, match=words):
        cfg(tmp_path, **kw)


def test_slurm_options_parse_key_value_and_refuse_anything_else():
    assert slurm_options(["partition=gpu", "cpus-per-task=8"]) == (("partition", "gpu"), ("cpus_per_task", "8"))
    for bad in ("partition", "=gpu", "partition="):
        with pytest.raises(UsageError, match="not KEY=VALUE"):
            slurm_options([bad])


def test_plan_gives_every_network_cell_the_width_and_the_key_tells_widths_apart(tmp_path):
    two = plan(cfg(tmp_path, n_devices=2, frameworks=("torch", "jax", "sklearn")))
    nets = [c for c in two if c.framework != "sklearn"]
    assert nets and all(c.devices == 2 for c in nets)
    one = plan(cfg(tmp_path, frameworks=("torch",)))
    assert {records.cell_key(c) for c in one}.isdisjoint(records.cell_key(c) for c in two)
    assert nets[0].label() == "mnist_mlp/torch-x2/cpu/s0" and one[0].label() == "mnist_mlp/torch/cpu/s0"


def test_torch_cells_start_under_torchrun_the_others_as_one_process():
    argv = worker_argv(cell(devices=2), "py", "c.json", "r.json")
    assert argv[:3] == ["py", "-m", TORCHRUN] and "--nproc-per-node=2" in argv and "--max-restarts=0" in argv
    assert argv[-4:] == ["-m", "bench.harness.worker", "c.json", "r.json"]
    for c in (cell(), cell(framework="jax", devices=2), cell(framework="tf", devices=2)):
        assert worker_argv(c, "py", "c.json", "r.json") == ["py", "-m", "bench.harness.worker", "c.json", "r.json"]


def test_environment_gives_jax_n_host_devices_and_torch_ranks_a_share_of_the_threads():
    env = worker_env(cell(framework="jax", devices=2), {"XLA_FLAGS": "--xla_force_host_platform_device_count=8 --a"})
    assert env["XLA_FLAGS"] == "--a --xla_force_host_platform_device_count=2"
    assert "XLA_FLAGS" not in worker_env(cell(framework="jax"), {})
    torch = worker_env(cell(devices=2), {})
    assert torch["OMP_NUM_THREADS"] == torch["BENCH_THREADS"] == "2"  # 4 threads over 2 ranks
    assert worker_env(cell(framework="tf", devices=2), {})["OMP_NUM_THREADS"] == "4"  # one process: all 4


def test_each_local_rank_gets_its_own_slice_of_the_cells_cpus(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert ranks.cpu_share([0, 1, 2, 3, 4, 5], 4) == [2, 3]
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert ranks.cpu_share([0, 1, 2, 3], 2) == [0, 1]


TORCHRUN_SUMMARY = """\
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
bench.harness.worker FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2026-12-01_02:40:11
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : -9 (pid: 4242)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 4242
============================================================
"""


def test_torchruns_summary_names_the_rank_that_failed_first(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("noise\n" + TORCHRUN_SUMMARY)
    assert _failed_rank(log) == "rank 1 failed first: killed by signal SIGKILL"
    log.write_text(TORCHRUN_SUMMARY.replace("-9 (pid", "1 (pid").replace("Signal 9 (SIGKILL) received by PID 4242",
                                                                          "To enable traceback see: https://x"))
    assert _failed_rank(log) == "rank 1 failed first: exited with code 1"
    log.write_text("Traceback (most recent call last):\nValueError: no summary here\n")
    assert _failed_rank(log) is None


def rec(devices: int, samples: float, **kw) -> Record:
    base = dict(task="mnist_cnn", framework="jax", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=1,
                status="ok", spec_hash="h", test_accuracy=0.9, train_time_s=10.0, steady_step_s=128 / samples,
                samples_per_s=samples, devices=devices, per_device_batch=128 // devices)
    return Record(**{**base, **kw})


def test_scaling_efficiency_is_throughput_at_n_over_n_times_one_device():
    resident, host = {"input": "device-resident: the whole split on the device"}, {"input": "host batches drawn"}
    recs = [rec(1, 1000.0, settings=resident), rec(1, 1200.0, seed=1, settings=resident),
            rec(2, 1650.0, settings=host), rec(4, 2200.0, settings=host)]
    rows = scaling.throughputs(recs)
    (key, by_n), = rows.items()
    assert key == ("mnist_cnn", "jax", "cpu") and list(by_n) == [1, 2, 4]
    assert scaling.efficiency(by_n, 2) == pytest.approx(1650 / (2 * 1100))  # median of the two 1-device runs
    assert scaling.efficiency(by_n, 4) == pytest.approx(0.5)
    md = markdown.markdown_report(recs)
    assert "## Data-parallel scaling" in md and "| mnist_cnn | jax | cpu | 2 | 64 | host |" in md and "75 %" in md
    assert "| mnist_cnn | jax | cpu | 1 | 128 | device |" in md  # the input paths differ: the table says so
    assert "| jax ×2 |" in md  # the main table's row names the width
    assert modes.ordered(["jax ×2", "tf ×2", "torch ×2", "torch"], ("tf", "torch", "jax")) == [
        "tf ×2", "torch", "torch ×2", "jax ×2"]  # the frameworks' order, widths together
    assert scaling.plot(recs) is not None


def test_no_scaling_section_without_a_multi_device_cell_and_no_efficiency_without_one_device():
    assert scaling.markdown_section([rec(1, 1000.0)]) == [] and scaling.plot([rec(1, 1000.0)]) is None
    (by_n,) = scaling.throughputs([rec(2, 900.0)]).values()
    assert scaling.efficiency(by_n, 2) is None


def test_records_from_before_the_devices_field_read_as_one_device():
    old = {k: v for k, v in dataclasses.asdict(rec(1, 1.0)).items()
           if k not in ("devices", "per_device_batch", "launcher")}
    assert records.schema.from_dict(old).devices == 1

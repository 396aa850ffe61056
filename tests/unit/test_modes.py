"""Modes and precisions without a framework: defaults, old records, cell keys, compare, report, worker env."""
import dataclasses
import json

import pytest

from bench import records
from bench.errors import UsageError
from bench.records import CELL_KEY, Record, cell_key, compare
from bench.report import markdown
from bench.report import tables as report
from bench.runner import RunConfig, plan
from bench.runner.isolation import worker_env
from bench.spec import modes


def rec(**kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0, epochs=2,
                status="ok", spec_hash="h", test_accuracy=0.95, train_time_s=10.0, peak_host_rss_bytes=2**29)
    return Record(**{**base, **kw})


def test_default_mode_is_each_frameworks_own_and_explicit_modes_stay():
    got = {(fw, d): modes.resolve_mode(fw, d, "default") for fw in ("tf", "torch", "jax") for d in ("cpu", "gpu")}
    assert got == {("tf", "cpu"): "eager", ("tf", "gpu"): "compiled", ("torch", "cpu"): "eager",
                   ("torch", "gpu"): "compiled", ("jax", "cpu"): "compiled", ("jax", "gpu"): "compiled"}
    assert modes.resolve_mode("torch", "cpu", "compiled") == "compiled"
    assert modes.resolve_mode("jax", "cpu", "eager") == "eager"  # the adapter refuses it: a skipped cell
    with pytest.raises(ValueError, match="unknown mode"):
        modes.resolve_mode("tf", "cpu", "fast")


def test_records_from_before_modes_read_as_what_they_ran(tmp_path):
    old = json.loads(records.to_json(rec(framework="tf", device="gpu")))
    for key in ("mode", "precision", "settings"):
        del old[key]
    path = tmp_path / "old.jsonl"
    path.write_text("\n".join(json.dumps({**old, "framework": fw, "device": d})
                              for fw, d in (("tf", "gpu"), ("tf", "cpu"), ("torch", "cpu"), ("jax", "cpu"))) + "\n")
    got, problems = records.read_file(path)
    assert problems == []
    assert [(r.framework, r.device, r.mode, r.precision) for r in got] == [
        ("tf", "gpu", "compiled", "fp32"), ("tf", "cpu", "eager", "fp32"), ("torch", "cpu", "eager", "fp32"),
        ("jax", "cpu", "compiled", "fp32")]


def test_plan_resolves_the_mode_per_framework_and_keys_keep_modes_apart(tmp_path):
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("tf", "torch", "jax"), devices=("cpu", "gpu"), out=tmp_path)
    assert {(c.framework, c.device): c.mode for c in plan(cfg)} == {
        ("tf", "cpu"): "eager", ("tf", "gpu"): "compiled", ("torch", "cpu"): "eager", ("torch", "gpu"): "compiled",
        ("jax", "cpu"): "compiled", ("jax", "gpu"): "compiled"}
    cells = plan(dataclasses.replace(cfg, mode="compiled", precision="bf16"))
    assert {(c.mode, c.precision) for c in cells} == {("compiled", "bf16")}
    assert "mode" in CELL_KEY and "precision" in CELL_KEY
    assert cell_key(rec(mode="compiled")) != cell_key(rec(mode="eager"))
    assert cell_key(rec(precision="bf16")) != cell_key(rec())
    # resume/latest: a compiled record does not replace (or count as done for) the eager cell
    assert len(records.latest([rec(mode="eager"), rec(mode="compiled")])) == 2
    assert cells[0].label() == "mnist_mlp/tf-compiled-bf16/cpu/s0"  # its logs do not overwrite the default's


def test_compare_never_compares_bf16_with_fp32_nor_eager_with_compiled():
    base = [rec(), rec(framework="tf", mode="eager")]
    cur = [rec(precision="bf16", train_time_s=5.0), rec(framework="tf", mode="compiled", train_time_s=5.0)]
    rows = compare.compare(base, cur, compare.DEFAULT_THRESHOLDS)
    assert {r.mark for r in rows} == {"not comparable"}
    assert {compare.shown(r.cell)[1] for r in rows} == {"torch", "torch (eager, bf16)", "tf", "tf (compiled, fp32)"}
    with pytest.raises(UsageError, match="nothing to compare"):
        compare.check_overlap(base, cur, "base", "cur")
    # an old record (no mode: the framework's default) still matches today's default run
    old = Record(**{k: v for k, v in vars(rec(framework="tf")).items() if k != "mode"})
    assert [r.mark for r in compare.compare([old], [rec(framework="tf", mode="eager")], compare.DEFAULT_THRESHOLDS)
            if r.metric == "time"] == ["unchanged"]


def test_report_labels_rows_when_a_framework_ran_in_several_modes():
    plain = [rec(), rec(framework="jax", mode="compiled")]
    _, rows = report.table_rows(plain)
    assert [r[1] for r in rows] == ["torch", "jax"]
    assert "- Modes and precision: torch eager, fp32; jax compiled, fp32" in markdown.markdown_report(plain)
    drawn = [rec(settings={"input": "batches drawn in the training thread, between steps"}),
             rec(framework="jax", device="gpu",
                 settings={"input": "batches drawn 2 ahead of training on a background thread"})]
    assert ("; input: cpu: batches drawn in the training thread, between steps; "
            "gpu: batches drawn 2 ahead of training on a background thread") in markdown.markdown_report(drawn)
    mixed = plain + [rec(mode="compiled", precision="bf16", train_time_s=4.0)]
    _, rows = report.table_rows(mixed)
    assert [r[1] for r in rows] == ["torch (compiled, bf16)", "torch (eager, fp32)", "jax"]
    assert rows[0][4].startswith("4.00") and rows[1][4].startswith("10.00")  # never a median over both


def test_gpu_cells_get_one_autotuning_policy_and_cpu_cells_none(tmp_path):
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("jax",), devices=("cpu", "gpu"), out=tmp_path)
    cpu, gpu = plan(cfg)
    env = worker_env(gpu, {"XLA_FLAGS": "--xla_dump_to=/tmp/x --xla_gpu_autotune_level=0"})
    assert env["TF_CUDNN_USE_AUTOTUNE"] == "1"
    assert env["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_gpu_autotune_level=4"  # the user's 0 is overridden
    assert "TF_CUDNN_USE_AUTOTUNE" not in worker_env(cpu, {}) and "XLA_FLAGS" not in worker_env(cpu, {})

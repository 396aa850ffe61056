"""Issue #15: one MFU yardstick per machine, device and precision; GPU rows always name their mode."""
import pytest

from bench.records import Record
from bench.report import markdown, yardstick
from bench.report import tables as report
from bench.spec import modes

ENV = {"hostname": "box", "cpu": "AMD EPYC", "cpus": 2, "gpus": ["NVIDIA H200"]}


def rec(**kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                status="ok", spec_hash="x", epochs=1, test_accuracy=0.9, train_time_s=10.0, precision="fp32",
                threads=2, env=ENV)
    return Record(**{**base, **kw})


def test_two_frameworks_with_different_own_peaks_share_one_yardstick():
    recs = [rec(framework="tf", achieved_flops=50e9, peak_flops=200e9, mfu=0.25),
            rec(framework="torch", achieved_flops=50e9, peak_flops=100e9, mfu=0.5)]
    assert yardstick.headline(recs) == [0.25, 0.25]  # both over the best peak measured there: 200 GFLOP/s
    header, rows = report.table_rows(recs, compact=True)
    cols = [dict(zip(header, r)) for r in rows]
    assert [c["CPU MFU"] for c in cols] == ["25.0 %", "25.0 %"] and [c["CPU GFLOP/s"] for c in cols] == ["50.0"] * 2
    assert "CPU MFU own peak" not in header  # the own-peak ratio is a detail
    header, rows = report.table_rows(recs)
    assert [dict(zip(header, r))["CPU MFU own peak"] for r in rows] == ["25.0 %", "50.0 %"]
    line = next(ln for ln in markdown.markdown_report(recs).splitlines() if ln.startswith("- MFU:"))
    assert "cpu fp32: best measured matmul (tf), 200.0 GFLOP/s" in line


def test_gpu_uses_the_datasheet_and_other_groups_keep_their_own():
    gpu = dict(device="gpu", mode="compiled", nominal_peak_flops=60e12, device_name="NVIDIA H200")
    recs = [rec(framework="tf", achieved_flops=6e12, peak_flops=50e12, **gpu),
            rec(framework="jax", achieved_flops=3e12, peak_flops=40e12, **gpu),
            rec(framework="jax", achieved_flops=3e12, peak_flops=80e12, **{**gpu, "precision": "bf16",
                                                                          "nominal_peak_flops": 900e12}),
            rec(framework="jax", achieved_flops=1e9, peak_flops=4e9, threads=1),  # another thread budget
            rec(framework="torch", achieved_flops=1e9, peak_flops=2e9, env={**ENV, "hostname": "other"})]
    assert yardstick.headline(recs) == pytest.approx([0.1, 0.05, 3 / 900, 0.25, 0.5])
    line = yardstick.describe(recs)
    assert "gpu fp32: datasheet (NVIDIA H200), 60,000.0 GFLOP/s" in line and "gpu bf16: datasheet" in line
    assert yardstick.headline([rec(status="failed")]) == [None] and yardstick.describe([]) is None


def test_gpu_labels_always_name_the_mode_cpu_labels_do_not():
    assert modes.label("torch", "gpu", "compiled", "fp32") == "torch (compiled, fp32)"
    assert modes.label("tf", "gpu", None, "fp32") == "tf (compiled, fp32)"
    assert modes.label("torch", "cpu", "eager", "fp32") == "torch"
    recs = [rec(), rec(device="gpu", mode="compiled"), rec(framework="jax", mode="compiled")]
    assert modes.framework_labels(recs) == ["torch", "torch (compiled, fp32)", "jax"]
    header, rows = report.table_rows([recs[0], rec(device="gpu", mode="compiled", train_time_s=2.0)])
    speedup = {r[1]: r[-1] for r in rows}
    assert speedup["torch (compiled, fp32)"] == "5.0×"  # over torch's CPU row (10 s / 2 s)


def test_default_mode_compiles_torch_on_gpu_only():
    assert modes.resolve_mode("torch", "gpu", "default") == "compiled"
    assert modes.resolve_mode("torch", "cpu", "default") == "eager"

"""The matmul peak and MFU arithmetic on fake timers that return known seconds (no framework).

A real timer's numbers cannot be predicted; these can, so every derived figure is checked exactly:
a FLOP count off by 2x, the median taken for the best, or a peak from the wrong size all fail.
"""
import math
import sys
import types

import pytest

from bench.harness import efficiency
from bench.harness.cell import Cell
from bench.spec import TASKS
from bench.spec.flops import task_flops

GFLOP = 1e9


def timer_at(rates: dict[int, list[float]], calls: list | None = None):
    """A fake Timer: size n runs at rates[n][i] FLOP/s on its i-th timed call (warm-up and count probe
    at the first rate); every call is logged as (n, count)."""

    def make(n, dtype, device):
        seq = iter([rates[n][0], rates[n][0], *rates[n]])

        def run(count):
            if calls is not None:
                calls.append((n, count))
            return 2 * n**3 * count / next(seq)
        return run
    return make


def test_the_peak_is_the_best_repeat_of_the_best_size_at_2n3_flops_per_product():
    rates = {512: [40 * GFLOP, 44 * GFLOP, 41 * GFLOP, 39 * GFLOP, 42 * GFLOP],
             1024: [60 * GFLOP, 50 * GFLOP, 66 * GFLOP, 55 * GFLOP, 58 * GFLOP],
             2048: [61 * GFLOP] * 5}
    calls = []
    peak = efficiency.measure(timer_at(rates, calls), "cpu", "float32", (2048, 512, 1024))
    assert peak["flops"] == pytest.approx(66 * GFLOP, rel=1e-12)  # best repeat of the best size
    assert peak["median_flops"] == pytest.approx(58 * GFLOP, rel=1e-12) and peak["n"] == 1024
    assert peak["sizes"] == [512, 1024, 2048]  # smallest first
    # The repeat count makes each timed call at least MIN_REPEAT_S long at the probed rate.
    assert peak["count"] == math.ceil(efficiency.MIN_REPEAT_S / (2 * 1024**3 / (60 * GFLOP)))
    assert [c for n, c in calls if n == 1024] == [1, 1] + [peak["count"]] * efficiency.PEAK_REPEATS


def test_sizes_too_slow_for_the_budget_are_skipped():
    # ~1 GFLOP/s (bf16 without bf16 units): n=1024 would take 2.1 s a product, beyond MAX_PRODUCT_S.
    slow = {512: [1 * GFLOP] * 5, 1024: [1.1 * GFLOP] * 5, 2048: [1.2 * GFLOP] * 5}
    calls = []
    peak = efficiency.measure(timer_at(slow, calls), "cpu", "bfloat16", (512, 1024, 2048))
    assert peak["sizes"] == [512] and peak["n"] == 512 and {n for n, _ in calls} == {512}
    assert peak["flops"] == pytest.approx(1 * GFLOP, rel=1e-12)


def test_lookup_caches_a_measurement_per_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_THREADS", "2")
    rates = {128: [5 * GFLOP] * 5}
    calls = []
    path = tmp_path / "peak.json"
    first = efficiency.lookup_peak("torch", "cpu", "float32", {"torch": "1"}, "cpu", timer_at(rates, calls), (128,),
                                   path)
    n_calls = len(calls)
    again = efficiency.lookup_peak("torch", "cpu", "float32", {"torch": "1"}, "cpu", timer_at(rates, calls), (128,),
                                   path)
    assert first["cached"] is False and again["cached"] is True and len(calls) == n_calls  # not re-measured
    assert again["flops"] == first["flops"] == pytest.approx(5 * GFLOP, rel=1e-12)


@pytest.fixture
def fake_peak(monkeypatch, tmp_path):
    """impls.torch.peak replaced by a timer at known rates: fp32 at 100 GFLOP/s, bf16 at 400."""
    rates = {"float32": 100 * GFLOP, "bfloat16": 400 * GFLOP}

    def matmul_timer(n, dtype, device):
        if device == "gpu":
            raise RuntimeError("no GPU here")
        return lambda count: 2 * n**3 * count / rates[dtype]

    monkeypatch.setitem(sys.modules, "impls.torch.peak", types.SimpleNamespace(matmul_timer=matmul_timer))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    return rates


def _cell(**kw) -> Cell:
    return Cell(**{**dict(task="mnist_cnn", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                          epochs=1, data_root="", weights_path=""), **kw})


def test_mfu_is_spec_flops_times_samples_per_s_over_the_peak_of_the_cells_precision(fake_peak):
    flops = task_flops(TASKS["mnist_cnn"])["train"]
    out = {"samples_per_s": 2000.0, "versions": {"torch": "x"}, "device_name": "cpu"}
    efficiency.annotate(out, _cell())
    assert out["flops_per_sample"] == flops and out["achieved_flops"] == flops * 2000.0
    assert out["peak_flops"] == pytest.approx(fake_peak["float32"], rel=1e-12)
    assert out["mfu"] == pytest.approx(flops * 2000.0 / fake_peak["float32"], rel=1e-12)
    assert set(out["peaks"]) == {"float32", "nominal"} and out["mfu_nominal"] is None
    bf16 = {"samples_per_s": 2000.0, "versions": {"torch": "x"}, "device_name": "cpu"}
    efficiency.annotate(bf16, _cell(precision="bf16"))
    assert bf16["peak_flops"] == pytest.approx(fake_peak["bfloat16"], rel=1e-12)
    assert bf16["mfu"] == pytest.approx(flops * 2000.0 / fake_peak["bfloat16"], rel=1e-12)
    assert bf16["peaks"]["float32"]["flops"] == pytest.approx(fake_peak["float32"], rel=1e-12)


def test_a_gpu_cell_without_a_measured_peak_falls_back_to_the_datasheet(fake_peak, capsys):
    flops = task_flops(TASKS["mnist_mlp"])["train"]
    out = {"samples_per_s": 1e5, "versions": {"torch": "x"}, "device_name": "NVIDIA H100 80GB HBM3"}
    efficiency.annotate(out, _cell(task="mnist_mlp", device="gpu"))
    assert "warning: fp32 matmul peak not measured" in capsys.readouterr().err
    assert out["peak_source"] == "nominal H100 SXM fp32" and out["peak_flops"] == 67e12
    assert out["mfu"] == out["mfu_nominal"] == pytest.approx(1e5 * flops / 67e12, rel=1e-12)

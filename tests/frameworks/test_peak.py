"""The matmul peak microbenchmark of each framework, its per-machine cache, and the worker's efficiency hook."""
import importlib
import json

import pytest

from bench.harness import efficiency
from bench.harness.cell import Cell
from bench.spec import TASKS
from bench.spec.flops import task_flops
from tests.conftest import FW_PARAMS, needs

TINY = (128,)  # a real microbenchmark, small enough for a test


def _timer(fw: str):
    return importlib.import_module(f"impls.{fw}.peak").matmul_timer


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_each_framework_times_real_work(fw):
    peak = efficiency.measure(_timer(fw), "cpu", "float32", TINY)
    assert 1e6 < peak["median_flops"] <= peak["flops"] and peak["n"] == 128 and peak["count"] >= 1
    # The timer's seconds must be the products' own: 16x the products take far longer. A timer that
    # returned before the work was done (JAX without its block: one dispatch however many products)
    # measures the dispatch, about the same for 2 and 32. Interleaved, best of 5: a busy machine
    # slows single calls, not all five.
    run = _timer(fw)(256, "float32", "cpu")
    run(1)
    times: dict[int, list[float]] = {2: [], 32: []}
    for _ in range(5):
        for count in times:
            times[count].append(run(count))
    assert min(times[32]) / min(times[2]) > 4, times


@pytest.mark.torch
@needs("torch")
def test_cache_measures_once_per_fingerprint_and_survives_damage(tmp_path, monkeypatch, capsys):
    path = tmp_path / "cache" / "peak.json"
    monkeypatch.setenv("BENCH_THREADS", "2")
    timer, versions = _timer("torch"), {"torch": "2.13.0+cpu"}

    def lookup(**kw):
        dtype = kw.pop("dtype", "float32")
        return efficiency.lookup_peak("torch", "cpu", dtype, kw.pop("versions", versions), "cpu", timer, TINY, path)

    first = lookup()
    assert first["cached"] is False and first["flops"] > 0 and path.exists()
    again = lookup()
    assert again["cached"] is True and again["flops"] == first["flops"] and again["n"] == first["n"]
    # Another thread budget or framework build is another machine as far as the peak goes.
    monkeypatch.setenv("BENCH_THREADS", "1")
    assert lookup()["cached"] is False
    assert lookup(versions={"torch": "2.14.0+cpu"})["cached"] is False
    bf16 = lookup(dtype="bfloat16")  # each dtype is its own measurement
    assert bf16["cached"] is False and bf16["fingerprint"]["dtype"] == "bfloat16"
    assert len(json.loads(path.read_text())["entries"]) == 4
    monkeypatch.setenv("BENCH_THREADS", "2")
    assert lookup()["cached"] is True
    assert capsys.readouterr().err == ""
    # A damaged file (writes are atomic, but hand edits and disk errors happen): warning, re-measure, rewrite.
    for damage in ('{"entries": {"abc', "[]", '{"entries": {"x": {"flops": -1}}}'):
        path.write_text(damage)
        res = lookup()
        assert res["cached"] is False and res["flops"] > 0
        assert lookup()["cached"] is True  # the rewritten file is whole again
    err = capsys.readouterr().err
    assert err.count(f"warning: peak cache {path} is damaged") == 2, err  # the 3rd is valid JSON, a bad entry


@pytest.mark.torch
@needs("torch")
def test_a_cached_peak_below_what_training_achieved_is_measured_again_and_the_higher_kept(tmp_path):
    # Measured on a busy machine, a cached peak stays low for good and MFUs come out above 100 %.
    path, timer, versions = tmp_path / "peak.json", _timer("torch"), {"torch": "2.13.0+cpu"}

    def lookup(at_least=None):
        return efficiency.lookup_peak("torch", "cpu", "float32", versions, "cpu", timer, TINY, path, at_least=at_least)

    real = lookup()["flops"]

    def set_cached(flops):
        data = json.loads(path.read_text())
        (entry,) = data["entries"].values()
        entry["flops"] = flops
        path.write_text(json.dumps(data))

    set_cached(real / 1000)  # as if measured while other jobs held the cores
    assert lookup()["cached"] is True  # nothing says it is stale
    again = lookup(at_least=real / 100)
    assert again["cached"] is False and "below the" in again["remeasured"]
    assert again["flops"] > real / 100 and lookup()["flops"] == again["flops"]  # the fresh one is kept
    set_cached(real * 1000)  # higher than any measurement: the new, lower one must not replace it
    kept = lookup(at_least=real * 10**6)
    assert kept["flops"] == real * 1000 and "lower still" in kept["remeasured"]
    assert lookup()["flops"] == real * 1000
    assert lookup(at_least=real)["cached"] is True  # above what training achieved: used as it is


@pytest.mark.torch
@needs("torch")
def test_worker_hook_fills_mfu_per_phase_and_falls_back_to_the_datasheet(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    cell = Cell(task="cats_vs_dogs", framework="torch", device="cpu", profile="smoke", dataset="cats_vs_dogs",
                seed=0, epochs=1, data_root="", weights_path="")
    phases = [{"name": "feature_extraction", "samples_per_s": 40.0}, {"name": "fine_tuning", "samples_per_s": 25.0}]
    out = {"samples_per_s": 40.0, "phases": phases, "versions": {"torch": "x"}, "device_name": "cpu"}
    efficiency.annotate(out, cell)
    flops = task_flops(TASKS["cats_vs_dogs"])
    assert out["peak_source"].startswith("measured matmul fp32 n=") and out["peak_flops"] > 0
    assert out["flops_per_sample"] == flops["train"] == phases[0]["flops_per_sample"]
    for ph in phases:
        assert ph["flops_per_sample"] == flops["phases"][ph["name"]]
        assert ph["achieved_flops"] == pytest.approx(ph["flops_per_sample"] * ph["samples_per_s"])
        assert ph["mfu"] == pytest.approx(ph["achieved_flops"] / out["peak_flops"])
    assert out["mfu"] == phases[0]["mfu"] and out["mfu_nominal"] is None
    assert set(out["peaks"]) == {"float32", "nominal"} and out["peaks"]["nominal"] is None
    # A bf16 cell is measured against the bf16 matmul peak (fp32 is recorded beside it).
    cell.precision, cell.task = "bf16", "mnist_mlp"
    out = {"samples_per_s": 1000.0, "versions": {"torch": "x"}, "device_name": "cpu"}
    efficiency.annotate(out, cell)
    assert out["peak_source"] == f"measured matmul bf16 n={out['peaks']['bfloat16']['n']}"
    assert out["peak_flops"] == out["peaks"]["bfloat16"]["flops"] and out["peaks"]["float32"]["flops"] > 0
    cell.precision = "fp32"
    # On a "GPU" torch cannot reach (this machine has none), the microbenchmark fails: the cell keeps
    # its numbers, a warning is printed, and a known device's datasheet peak stands in.
    cell.device, cell.task = "gpu", "mnist_mlp"
    out = {"samples_per_s": 1e5, "versions": {"torch": "x"}, "device_name": "NVIDIA H100 80GB HBM3"}
    efficiency.annotate(out, cell)
    assert "warning: fp32 matmul peak not measured" in capsys.readouterr().err
    assert out["peak_source"] == "nominal H100 SXM fp32" and out["peak_flops"] == 67e12
    assert out["mfu"] == out["mfu_nominal"] == pytest.approx(1e5 * task_flops(TASKS["mnist_mlp"])["train"] / 67e12)


def test_nominal_peaks_match_device_names_as_frameworks_report_them():
    names = {"NVIDIA H100 80GB HBM3": "H100 SXM", "NVIDIA H100 PCIe": "H100 PCIe", "NVIDIA H100 NVL": "H100 NVL",
             "NVIDIA H200": "H200 SXM", "NVIDIA A100-SXM4-80GB": "A100", "NVIDIA A100 80GB PCIe": "A100",
             "NVIDIA L40S": "L40S", "NVIDIA L4": "L4", "Tesla T4": "T4", "NVIDIA A10": "A10"}
    for name, model in names.items():
        assert efficiency.nominal_peak(name)["device"] == model, name
    for unknown in ("NVIDIA A10G", "AMD EPYC", "", None):
        assert efficiency.nominal_peak(unknown) is None
    assert efficiency.nominal_peak("Tesla T4")["bf16"] is None  # Turing has no bf16 tensor cores

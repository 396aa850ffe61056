"""FLOPs and MFU end to end: a real smoke run records them, the second worker reuses the cached peak."""
import json

import pytest

from bench.spec import TASKS
from bench.spec.flops import task_flops
from tests.cli.test_cli import bench
from tests.conftest import has


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_smoke_run_records_mfu_against_a_peak_measured_once(tmp_path):
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--repeats", "2", "--out", str(out),
                env={"BENCH_CACHE": str(tmp_path / "cache")})
    assert res.returncode == 0, res.stderr
    first, second = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    for r in (first, second):
        assert r["status"] == "ok", r["error"]
        assert r["flops_per_sample"] == task_flops(TASKS["mnist_mlp"])["train"]
        assert r["achieved_flops"] == pytest.approx(r["flops_per_sample"] * r["samples_per_s"], rel=1e-12)
        assert 0 < r["mfu"] <= 1 and r["mfu"] == pytest.approx(r["achieved_flops"] / r["peak_flops"], rel=1e-12)
        assert r["peak_source"] == f"measured matmul fp32 n={r['peaks']['float32']['n']}"
        assert r["peaks"]["float32"]["fingerprint"]["threads"] == str(r["threads"])
    # The first worker measured the peak and cached it; the second read it back unchanged.
    assert first["peaks"]["float32"]["cached"] is False and second["peaks"]["float32"]["cached"] is True
    assert first["peak_flops"] == second["peak_flops"]
    assert len(json.loads((tmp_path / "cache" / "peak.json").read_text())["entries"]) == 1
    row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| mnist_mlp | torch"))
    header = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| task |"))
    cols = dict(zip(header.split(" | "), row.split(" | ")))
    mfu = sorted([first["mfu"], second["mfu"]])
    assert cols["CPU MFU"] == f"{100 * (mfu[0] + mfu[1]) / 2:.1f} %"  # the median of the two repeats

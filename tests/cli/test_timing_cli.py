"""The timing protocol end to end: a real smoke run records step windows, time-to-accuracy and training memory."""
import json

import pytest

from bench.harness import loop
from bench.spec import PROFILES, TASKS
from tests.cli.test_cli import bench
from tests.conftest import has


@pytest.mark.slow
@pytest.mark.skipif(not has("jax"), reason="needs jax")
def test_smoke_run_records_first_and_steady_steps_tta_and_training_memory(tmp_path):
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "jax", "--out", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    r = json.loads((out / "records.jsonl").read_text())
    assert r["status"] == "ok", r["error"]
    task, smoke = TASKS["mnist_mlp"], PROFILES["smoke"]
    # Windows from the spec, in the probe after training: K warm-up steps, then whole windows of M steps
    # over at most one epoch's steps.
    steps, k, m = smoke.train_limit // task.batch_size, task.measurement.warmup_steps, task.measurement.window_steps
    assert r["step_windows"] == (min(steps, k + task.measurement.probe_steps) - k) // m > 0
    assert r["first_step_s"] > r["steady_step_s"] > 0  # step 1 includes XLA's compilation
    assert r["steady_step_iqr_s"] >= 0
    assert r["train_time_s"] == pytest.approx(sum(h["time_s"] for h in r["history"]))
    assert r["settings"]["input"] == loop.input_setting(True, 0)  # MNIST: device-resident
    assert r["settings"]["tf32_check"].startswith("fp32 (no TF32)")
    tta, excl = r["time_to_accuracy_s"], r["time_to_accuracy_excl_compile_s"]
    assert excl is None or excl < tta
    # Time to accuracy agrees with the per-epoch test accuracies (smoke rarely reaches 98 %: either way).
    accs = [h["test_accuracy"] for h in r["history"]]
    assert len(accs) == r["epochs"] and r["test_accuracy"] == accs[-1]
    assert r["tta_target"] == task.target_accuracy["mnist"]
    first = next((e for e, a in enumerate(accs, 1) if a >= r["tta_target"]), None)
    assert r["tta_reached_epoch"] == first and (r["time_to_accuracy_s"] is None) == (first is None)
    if first is not None:
        assert r["time_to_accuracy_s"] > sum(h["time_s"] + h["test_time_s"] for h in r["history"][:first])
    # Memory: training added some, and the whole-process peak covers setup and training.
    assert r["train_added_rss_bytes"] > 0 and r["train_rss_note"] is None
    assert r["peak_host_rss_bytes"] >= max(r["setup_peak_rss_bytes"], r["train_peak_rss_bytes"])
    report = (out / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| mnist_mlp | jax"))
    assert " ± " in row and ("not reached" in row) == (first is None)
    assert "time to acc s" in report and "train-added RSS" in report

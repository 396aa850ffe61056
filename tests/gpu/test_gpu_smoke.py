"""One smoke cell per framework on a real GPU, where the machine has one (skipped, with the reason, where not)."""
import json
import os
import subprocess
import sys

import pytest

from bench import machine
from tests.conftest import FW_PARAMS, GPU_ENV, ROOT

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("fw", FW_PARAMS)
def test_a_smoke_cell_trains_on_the_gpu_with_its_pins(fw, tmp_path):
    if not machine.gpu_models():
        pytest.skip("no GPU: nvidia-smi lists none")
    # The worker sees the GPUs the user's environment allowed, not the test process's CPU-only view.
    env = {k: v for k, v in os.environ.items() if k not in GPU_ENV}
    env.update({k: v for k, v in GPU_ENV.items() if v is not None})
    out = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "bench", "run", "--task", "mnist_mlp", "--framework", fw,
                          "--device", "gpu", "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900)
    (rec,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert res.returncode == 0 and rec["status"] == "ok", rec["error"]
    assert rec["device"] == "gpu" and rec["device_name"] != rec["env"]["cpu"]
    assert rec["peak_device_bytes"] and rec["peak_device_bytes"] > 0
    assert rec["train_peak_device_bytes"] == rec["peak_device_bytes"] and rec["eval_peak_device_bytes"] > 0
    assert rec["device_bytes_before_training"] > 0  # the resident split at least
    if fw == "torch":
        assert rec["device_reserved_bytes"] >= rec["train_peak_device_bytes"]
    assert rec["test_accuracy"] > 0.6
    assert rec["settings"]["input"].startswith("device-resident")
    assert rec["settings"]["tf32_check"].startswith("fp32 (no TF32)"), rec["settings"]
    assert any(pin in rec["settings"]["precision"] for pin in ("TF32 off", "highest")), rec["settings"]
    assert rec["steady_step_s"] and rec["first_step_s"] > rec["steady_step_s"]

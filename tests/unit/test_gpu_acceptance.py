"""benchmarks/gpu_acceptance.py and gpu_bundle.py on a CPU-only machine (docs/gpu.md): the one-line exit without a
GPU, the checks and summary.md on real records relabelled as GPU ones, the bundle's layout and its pip command."""
from __future__ import annotations

import copy
import gzip
import json
import subprocess
import sys

import pytest

from bench import machine
from benchmarks import gpu_acceptance as ga
from benchmarks import gpu_bundle, gpu_probe
from tests.conftest import ROOT, has

H200 = {"name": "NVIDIA H200", "bytes": 143771 * 2**20, "found_by": "nvidia-smi", "frameworks": ["torch"],
        "run_exit": {"smoke": 0, "compiled": 0}, "minutes": 1.0, "date": "2026-12-01T00:00:00+00:00"}


def test_without_a_gpu_it_exits_2_with_one_line(tmp_path):
    if machine.gpu_models():
        pytest.skip("this machine has a GPU: the no-GPU exit cannot be shown here")
    res = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_acceptance.py"), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [res.stderr.strip()] and res.stderr.startswith("gpu_acceptance: no GPU")
    assert "nothing to check" in res.stderr and not (tmp_path / "o").exists()


@pytest.fixture(scope="module")
def cpu_record(tmp_path_factory):
    """The record of a real CPU smoke cell (torch, mnist_mlp)."""
    if not has("torch"):
        pytest.skip("torch is not installed")
    out = tmp_path_factory.mktemp("run") / "smoke"
    subprocess.run([sys.executable, "-m", "bench", "run", "--task", "mnist_mlp", "--profile", "smoke", "--framework",
                    "torch", "--device", "cpu", "--no-inference", "--out", str(out)], cwd=ROOT, capture_output=True,
                   timeout=300)
    (rec,) = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok", rec["error"]
    return rec


def as_gpu(rec: dict, **fields) -> dict:
    """The CPU record as an H200 one would read: 4x faster, TF32 pinned off, device memory set."""
    g = copy.deepcopy(rec)
    g.update(device="gpu", device_name="NVIDIA H200", steady_step_s=rec["steady_step_s"] / 4,
             samples_per_s=rec["samples_per_s"] * 4, mfu_nominal=0.0123, nominal_peak_flops=67e12,
             peak_device_bytes=50 * 2**20, train_peak_device_bytes=50 * 2**20, eval_peak_device_bytes=20 * 2**20,
             device_reserved_bytes=64 * 2**20)
    g["settings"] = {**g["settings"], "precision": "float32, TF32 off"}
    g.update(fields)
    return g


def test_the_summary_of_real_records_passes_and_shows_the_speedup(cpu_record, tmp_path):
    runs = {"smoke": [cpu_record, as_gpu(cpu_record)], "compiled": [as_gpu(cpu_record, mode="compiled")]}
    for name, recs in runs.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    found = {"torch": {"logits": {"mnist_mlp": [2e-6, 1e-4]}, "off_gpu": {"mnist_mlp": []}, "settings": {}}}
    assert ga.evaluate(tmp_path, H200, (True, "bench verify: ok"), found) == 0
    page = (tmp_path / "summary.md").read_text()
    assert page.startswith("# GPU acceptance: NVIDIA H200")
    row = next(ln for ln in page.splitlines() if ln.startswith("| smoke | mnist_mlp | torch |"))
    assert "| 4.0× |" in row and "1.23% of 67 TFLOP/s" in row and f"{cpu_record['steady_step_s'] * 1e3:.2f}" in row
    assert "PASS every cell ran (status ok): 3 cells" in page and "PASS torch: every tensor of a train step" in page
    assert "PASS peak_device_bytes in (0, 140 GiB): 2 cells" in page and "FAIL" not in page


def test_implausible_memory_fails_and_absent_fields_are_noted(cpu_record):
    bad = as_gpu(cpu_record, peak_device_bytes=200 * 2**30, device_reserved_bytes=2**20)
    for f in ("eval_peak_device_bytes", "nvml_peak_bytes"):
        bad.pop(f, None)
    lines = dict((text.split(":")[0], ok) for ok, text in ga.record_checks({"smoke": [cpu_record, bad]}, H200))
    assert lines["peak_device_bytes in (0, 140 GiB)"] is False
    assert lines["device_reserved_bytes in (0, 140 GiB)"] is False  # below the train peak
    assert lines["eval_peak_device_bytes"] is None  # absent: a note, not a crash
    assert lines["every cell ran (status ok)"] is True and lines["TF32 off (settings precision)"] is True
    tf32_on = as_gpu(cpu_record, device_name="Tesla T4")
    tf32_on["settings"].update(precision="float32", tf32_check="reduced precision (TF32 or lower) in fp32 matmuls")
    checks = ga.record_checks({"smoke": [tf32_on]}, H200)
    assert [ok for ok, _ in checks[1:4]] == [False, False, False]  # device name, precision words, runtime check


def test_probe_failures_are_fail_lines():
    found = {"jax": {"logits": {"mnist_cnn": [3e-3, 1e-4]}, "off_gpu": {"mnist_cnn": ["['conv1']['kernel']"]}},
             "tf": {"error": "exit 1: ModuleNotFoundError: tensorflow"}}
    lines = ga.probe_checks(found)
    assert [ok for ok, _ in lines] == [False, False, False]
    assert "3.0e-03 > 1e-04" in lines[0][1] and "conv1" in lines[1][1] and "tensorflow" in lines[2][1]


@pytest.mark.skipif(not has("torch"), reason="torch is not installed")
def test_placement_finds_every_tensor_of_a_cpu_build():
    from bench.harness.adapter import load_adapter
    from bench.spec import TASKS
    from bench.weights import init_weights

    a = load_adapter("torch")
    a.build(TASKS["mnist_mlp"], init_weights(TASKS["mnist_mlp"], 0), "cpu", 0)
    a.set_phase(0)
    off = gpu_probe.off_gpu("torch", a)
    assert len([n for n in off if n.startswith("model.")]) == 6  # 3 kernels, 3 biases: none on a GPU


def fake_root(tmp_path):
    from PIL import Image

    (tmp_path / "mnist").mkdir(parents=True)
    for name in gpu_bundle.MNIST:
        (tmp_path / "mnist" / name).write_bytes(gzip.compress(b"\0\0\x08\x01" + bytes(8)))
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (tmp_path / "cats_vs_dogs" / split / cls).mkdir(parents=True)
            folder = tmp_path / "cats_vs_dogs" / split / cls
            for i in range(3):  # tiny but real JPEGs
                Image.new("RGB", (8, 8), (i * 60, 0, 0)).save(folder / f"{cls}.{i}.jpg")
    return tmp_path


def test_the_bundle_has_the_layout_the_acceptance_run_reads(tmp_path, capsys):
    root = fake_root(tmp_path / "root")
    assert gpu_bundle.main([str(tmp_path / "b"), "--data-root", str(root), "--photos", "2,1", "--no-wheels"]) == 0
    data = tmp_path / "b" / "data"
    assert sorted(p.name for p in (data / "mnist").iterdir()) == sorted(gpu_bundle.MNIST)
    assert sorted(p.name for p in (data / "cats_vs_dogs" / "train" / "dog").iterdir()) == ["dog.0.jpg", "dog.1.jpg"]
    assert len(list((data / "cats_vs_dogs" / "val" / "cat").iterdir())) == 1
    assert (data / "weights" / "efficientnet-lite0-57934424.pth").stat().st_size == 18826032
    assert not (tmp_path / "b" / "wheels").exists()
    out = capsys.readouterr().out
    assert "--no-index" in out and f"--data-root {tmp_path / 'b'}/data" in out
    with pytest.raises(SystemExit, match="3 photos, 5 wanted"):
        gpu_bundle.main([str(tmp_path / "c"), "--data-root", str(root), "--photos", "5,1", "--no-wheels"])


def test_the_pip_step_asks_for_the_gpu_machines_python_without_dependencies(tmp_path):
    cmd = gpu_bundle.pip_download_cmd(tmp_path)
    assert cmd[:4] == [sys.executable, "-m", "pip", "download"] and "--no-deps" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12" and cmd[cmd.index("-d") + 1] == str(tmp_path)
    names = [a.split("==")[0] for a in cmd if a.split("==")[0] in gpu_bundle.WHEELS]
    assert names == ["mlxtend", "submitit", "cloudpickle", "nvidia-ml-py"]
    assert not any("tensorflow" in a or "keras" in a for a in cmd)

"""The worker reports every outcome as data; the runner fixes the child's environment before import."""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from bench.harness import worker
from bench.harness.adapter import DeviceUnavailable
from bench.runner.isolation import worker_env
from tests.conftest import has


def cell(tmp_path: Path, **kw) -> worker.Cell:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                epochs=1, data_root=str(tmp_path), weights_path=str(tmp_path / "missing.npz"), threads=2)
    return worker.Cell(**{**base, **kw})


def test_classify_missing_framework_and_device_as_skips_everything_else_as_failure():
    assert worker.classify(DeviceUnavailable("no GPU"), "jax") == ("skipped", "no GPU")
    status, msg = worker.classify(ModuleNotFoundError("No module named 'torch'", name="torch"), "torch")
    assert status == "skipped" and "pip install 'bench[torch]'" in msg
    assert worker.classify(ModuleNotFoundError("x", name="optax.contrib"), "jax")[0] == "skipped"
    assert worker.classify(ModuleNotFoundError("x", name="numpy"), "torch")[0] == "failed"
    assert worker.classify(ValueError("bad"), "tf") == ("failed", "ValueError: bad")


@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_a_failing_cell_writes_a_failure_with_its_traceback(tmp_path):
    c = cell(tmp_path)
    cell_path, result_path = tmp_path / "cell.json", tmp_path / "result.json"
    cell_path.write_text(json.dumps(c.__dict__))
    assert worker.main([str(cell_path), str(result_path)]) == 0
    result = json.loads(result_path.read_text())
    assert result["status"] == "failed" and "missing.npz" in result["error"]
    assert "Traceback" in result["traceback"] and result["versions"]["torch"]
    assert result["import_time_s"] > 0  # what was measured before the failure survives


def _rank0_main(tmp_path, monkeypatch, train) -> tuple[int, dict]:
    """worker.main as rank 0 of 2 torchrun ranks, its training replaced by `train`; its SIGTERM handler undone."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(worker, "run_logits", train)
    cell_path, result_path = tmp_path / "cell.json", tmp_path / "result.json"
    cell_path.write_text(json.dumps(cell(tmp_path, kind="logits", threads=0).__dict__))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = worker.main([str(cell_path), str(result_path)])
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code, json.loads(result_path.read_text())


def test_torchruns_sigterm_during_training_is_rank_0s_reported_failure(tmp_path, monkeypatch):
    def stopped(c, out):
        out["measured"] = 1.0
        os.kill(os.getpid(), signal.SIGTERM)  # torchrun ends the ranks once another one died
        time.sleep(5)

    code, result = _rank0_main(tmp_path, monkeypatch, stopped)
    assert code == 1 and result["status"] == "failed" and "stopped by torchrun (SIGTERM)" in result["error"]
    assert result["measured"] == 1.0


def test_a_sigterm_while_rank_0_reports_its_failure_does_not_lose_the_result(tmp_path, monkeypatch):
    """The race CI met: rank 0's all-reduce fails as its peer dies, then torchrun's SIGTERM lands while
    rank 0 formats that error; the result must still be written, naming the first error."""
    def peer_died(c, out):
        raise RuntimeError("gloo: Read error: Connection reset by peer")

    real = worker.classify

    def classify_then_sigterm(exc, framework):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(exc, framework)

    monkeypatch.setattr(worker, "classify", classify_then_sigterm)
    code, result = _rank0_main(tmp_path, monkeypatch, peer_died)
    assert code == 1 and result["status"] == "failed" and "Connection reset by peer" in result["error"]
    try:  # the handler itself: while a failure is being handled, SIGTERM adds nothing
        raise RuntimeError("collective failed")
    except RuntimeError:
        worker._terminated(signal.SIGTERM, None)
    with pytest.raises(worker.Terminated):
        worker._terminated(signal.SIGTERM, None)


def test_worker_env_cpu_cells_hide_gpus_and_share_one_thread_budget(tmp_path):
    env = worker_env(cell(tmp_path, threads=3), base={"PATH": "/bin", "JAX_PLATFORMS": "cuda"})
    assert env["CUDA_VISIBLE_DEVICES"] == "" and env["JAX_PLATFORMS"] == "cpu"
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "BENCH_THREADS"):
        assert env[var] == "3"
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false" and env["TF_FORCE_GPU_ALLOW_GROWTH"] == "true"
    gpu = worker_env(cell(tmp_path, device="gpu"), base={"PATH": "/bin", "JAX_PLATFORMS": "cpu"})
    assert "JAX_PLATFORMS" not in gpu and gpu["CUDA_VISIBLE_DEVICES"] == "0"  # --gpu's default: one GPU


def test_memory_errors_are_named_as_such():
    import resource

    from bench.harness.worker import classify

    if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
        pytest.skip("the test process itself runs under a memory limit")
    assert classify(MemoryError("alloc 8 GiB"), "torch") == ("failed", "MemoryError: alloc 8 GiB (out of memory)")
    assert classify(ValueError("bad"), "torch") == ("failed", "ValueError: bad")

"""The timing protocol's bookkeeping: step windows and IQR, time-to-accuracy, training-added memory.

A plain deterministic fake adapter drives the real worker loop here: it stands in for no
framework (the frameworks are tested in tests/frameworks and end to end in tests/cli); it makes
the step and evaluation times and the accuracy per epoch known, so the bookkeeping can be checked.
"""
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import data, measure, runner, weights, worker
from bench.spec import PROFILES, TASKS, Measurement
from bench.timing import StepWindows, TimeToAccuracy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def drive(m: Measurement, step_times: list[list[float]]) -> tuple[StepWindows, int]:
    """Run StepWindows over epochs of steps with these durations on a fake clock; returns it and the sync count."""
    clock, syncs = FakeClock(), []
    w = StepWindows(m, lambda: syncs.append(clock.now), clock)
    for epoch in step_times:
        w.begin_epoch(clock.now)
        for dt in epoch:
            clock.now += dt
            w.after_step()
        syncs.append(clock.now)  # the caller's epoch-end sync
        clock.now += 1.0  # evaluation between epochs: must land in no window
    return w, len(syncs)


def test_windows_of_m_steps_after_k_warmup_with_one_sync_each_and_the_iqr():
    # 12 steps per epoch x 2 (the smoke profile), K 2, M 5: windows 3-7 and 8-12, then 1-5 and 6-10
    # of epoch 2 (steps 11-12 are a partial window: dropped). Step 1 "compiles" (0.5 s).
    e1 = [0.5, 0.02] + [0.01] * 5 + [0.02] * 5
    e2 = [0.01] * 5 + [0.03] * 5 + [0.5, 0.5]
    w, syncs = drive(Measurement(2, 5), [e1, e2])
    assert w.windows == pytest.approx([0.05, 0.10, 0.05, 0.15])
    s = w.summary()
    assert s["step_windows"] == 4 and s["first_step_s"] == pytest.approx(0.5)
    assert s["steady_step_s"] == pytest.approx(0.015)  # median of 10, 20, 10, 30 ms per step
    # per-step times 10, 10, 20, 30 ms: inclusive quartiles 10 and 22.5 ms
    assert s["steady_step_iqr_s"] == pytest.approx(0.0125)
    assert s["steady_step_cv"] == pytest.approx(0.0095743 / 0.0175, rel=1e-4)  # sample sd / mean
    assert syncs == 1 + 1 + 4 + 2  # step 1, warm-up end, one per window, the two epoch ends


def test_too_few_steps_give_no_window_and_none_not_a_fake_number():
    w, _ = drive(Measurement(2, 5), [[0.1] * 6])
    assert w.summary() == {"first_step_s": pytest.approx(0.1), "steady_step_s": None,
                           "steady_step_iqr_s": None, "steady_step_cv": None, "step_windows": 0}


def test_the_transfer_smoke_profile_yields_one_window_per_phase():
    # cats_vs_dogs smoke: 2 steps per phase; its measurement must still time one window.
    m = TASKS["cats_vs_dogs"].measurement
    w, syncs = drive(m, [[2.0, 0.3]])
    s = w.summary()
    assert s["step_windows"] == 1 and s["steady_step_s"] == pytest.approx(0.3) and s["steady_step_iqr_s"] is s["steady_step_cv"] is None
    assert s["first_step_s"] == pytest.approx(2.0) and syncs == 3
    with pytest.raises(ValueError):
        Measurement(0, 5)


def test_time_to_accuracy_stops_at_the_first_evaluation_reaching_the_target():
    clock = FakeClock()
    tta = TimeToAccuracy(0.98, clock)
    tta.check(1, 0.99)  # before start(): ignored
    tta.start()
    for epoch, acc in enumerate([0.9, 0.985, 0.97, 0.99], 1):
        clock.now += 10.0
        tta.check(epoch, acc)
    assert tta.summary() == {"tta_target": 0.98, "time_to_accuracy_s": 20.0, "tta_reached_epoch": 2}
    never = TimeToAccuracy(0.98, clock)
    never.start()
    never.check(1, 0.979)
    assert never.summary() == {"tta_target": 0.98, "time_to_accuracy_s": None, "tta_reached_epoch": None}
    assert TimeToAccuracy(None, clock).summary()["tta_target"] is None


STEP_S, COMPILE_S, EVAL_S = 0.004, 0.15, 0.2


class FakeAdapter:
    """Deterministic stand-in for the worker loop: known step and evaluation times, and a test
    accuracy of 0.5 + 0.2 x epoch (70, 90, 100 %), made by answering the true label that often."""

    def __init__(self, test_labels: np.ndarray, steps_per_epoch: int):
        self.labels, self.per_epoch = test_labels, steps_per_epoch
        self.steps = self.syncs = 0

    def versions(self):
        return {"fake": "1"}

    def build(self, task, w, device, seed, **options):
        pass

    def settings(self):
        return {}

    def param_count(self):
        return 0

    def device_name(self):
        return "fake"

    def device_peak_bytes(self):
        return None

    def train_step(self, x, y):
        self.steps += 1
        time.sleep(COMPILE_S if self.steps == 1 else STEP_S)
        return 0.5

    def sync(self):
        self.syncs += 1

    def predict(self, x):
        time.sleep(EVAL_S)
        epoch = self.steps // self.per_epoch
        labels = np.pad(self.labels, (0, len(x) - len(self.labels)))  # the evaluation batch is zero-padded
        right = int(round(min(1.0, 0.5 + 0.2 * epoch) * len(self.labels)))
        answer = np.where(np.arange(len(x)) < right, labels, (labels + 1) % 10)
        return np.eye(10, dtype=np.float32)[answer]


@pytest.mark.parametrize("epochs,reached", [(3, 3), (2, None)])
def test_worker_loop_windows_tta_with_eval_time_and_train_time_without(tmp_path, monkeypatch, epochs, reached):
    task = TASKS["mnist_mlp"]
    td = data.load_task_data(task, "mnist", PROFILES["smoke"], tmp_path)  # the bundled digits: offline
    steps = len(td.train) // task.batch_size
    assert steps == 12 and len(td.test) <= task.eval_batch_size  # one evaluation batch per epoch
    fake = FakeAdapter(td.test.y, steps)
    monkeypatch.setattr("bench.adapter.load_adapter", lambda fw, kind="adapter": fake)
    # The MFU hook would import a framework for its matmul peak: not this test's subject (tested with it).
    monkeypatch.setattr("bench.efficiency.annotate", lambda out, cell: None)
    wpath, _ = weights.materialize(task, 0, tmp_path / "w", tmp_path)
    cell = worker.Cell(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                       epochs=epochs, data_root=str(tmp_path), weights_path=str(wpath))
    out, events = {}, []
    worker.run_train(cell, out, lambda ev, **kw: events.append(ev))
    assert [round(h["test_accuracy"], 2) for h in out["history"]] == [0.7, 0.9, 1.0][:epochs]
    assert out["step_windows"] == 2 * epochs  # K 2, M 5, 12 steps: 3-7 and 8-12, then 1-5 and 6-10 per epoch
    assert fake.syncs == 2 + out["step_windows"] + epochs  # step 1, warm-up end, windows, epoch ends
    assert out["first_step_s"] >= COMPILE_S > out["steady_step_s"] >= STEP_S
    # Evaluation (EVAL_S per epoch) is outside train_time_s ...
    assert out["train_time_s"] == pytest.approx(sum(h["time_s"] for h in out["history"]))
    assert out["train_time_s"] < COMPILE_S + 2 * epochs * steps * STEP_S + EVAL_S
    assert out["eval_time_s"] >= EVAL_S and out["test_accuracy"] == out["history"][-1]["test_accuracy"]
    assert out["tta_target"] == 0.98 and out["tta_reached_epoch"] == reached
    if reached is None:
        assert out["time_to_accuracy_s"] is None
    else:  # ... and inside the time to accuracy, which never pauses
        assert out["time_to_accuracy_s"] >= out["train_time_s"] + reached * EVAL_S
    assert events[0] == "rss_reset" and "start" in events


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc/self/clear_refs needed")
def test_whole_process_peak_survives_the_reset_that_measures_training(tmp_path):
    # A worker whose setup peaks at ~300 MiB and whose "training" adds ~40 MiB: the reset lowers
    # the ru_maxrss wait4 reports, and the runner must still record the 300 MiB peak.
    (tmp_path / "fake_worker.py").write_text(
        "import sys\nfrom pathlib import Path\nfrom bench import measure, worker\n"
        "def touch(mib):\n    b = bytearray(mib * 2**20)\n    b[::4096] = b'\\1' * len(b[::4096])\n    return b\n"
        "big = touch(300)\ndel big\nout = {'status': 'ok'}\nrss = measure.start_training_rss(out, worker.emit)\n"
        "small = touch(40)\nout.update(measure.train_rss(rss))\nworker.write_json(Path(sys.argv[-1]), out)\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_worker.py"} "$@"\n')
    python.chmod(0o755)
    cfg = runner.RunConfig(tasks=["mnist_mlp"], frameworks=["torch"], devices=["cpu"], out=tmp_path / "run",
                           pythons={"torch": str(python)}, timeout_s=60)
    cell = worker.Cell(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                       epochs=1, data_root=str(tmp_path), weights_path=str(tmp_path / "none.npz"))
    rec, body = runner.run_cell(cell, cfg)
    assert rec.status == "ok", rec.error
    assert rec.setup_peak_rss_bytes >= 300 * 2**20 and rec.peak_host_rss_bytes >= rec.setup_peak_rss_bytes
    assert 40 * 2**20 <= rec.train_added_rss_bytes < 100 * 2**20
    assert rec.train_peak_rss_bytes < 300 * 2**20 and rec.train_rss_note is None


def test_memory_probes_fall_back_to_none_with_the_reason():
    assert measure.train_rss({"rss_at_reset_bytes": None, "train_rss_note": "peak RSS not reset: x"}) == {
        "train_peak_rss_bytes": None, "train_added_rss_bytes": None, "train_rss_note": "peak RSS not reset: x"}

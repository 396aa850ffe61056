"""The timing protocol's bookkeeping: step windows and IQR, time-to-accuracy, training-added memory.

A plain deterministic fake adapter drives the real worker loop here: it stands in for no
framework (the frameworks are tested in tests/frameworks and end to end in tests/cli); it makes
the step and evaluation times and the accuracy per epoch known, so the bookkeeping can be checked.
"""
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from bench import data, runner, weights
from bench.harness import memory as measure
from bench.harness.cell import Cell
from bench.harness.timing import StepWindows, TimeToAccuracy, epoch_summary
from bench.harness.train import run_train
from bench.spec import PROFILES, TASKS, Measurement
from bench.spec.flops import task_flops
from bench.spec.protocol import INFERENCE


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
    assert s["step_windows"] == 1 and s["steady_step_s"] == pytest.approx(0.3)
    assert s["steady_step_iqr_s"] is s["steady_step_cv"] is None
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


# Dyadic durations: every sum and mean below is exact in float64, so the derived fields are checked
# with ==, and a formula that is off by anything (samples/s from the first epoch, a median that
# includes it, a missing evaluation in the time to accuracy) fails.
COMPILE, EVAL, PEAK = 0.25, 0.5, 2.0**40
PROBE = 2.0**-6  # seconds per step in the step probe after training: the steady figures must be these
STEP = (2.0**-8, 2.0**-7, 2.0**-8)  # seconds per step in epochs 1, 2, 3 of each phase (epoch 2 is slower)
ACCURACY = (0.7, 0.9, 1.0)  # test accuracy after epochs 1, 2, 3 (the MNIST target 0.98 is reached at 3)


class ClockedAdapter:
    """The adapter contract with known costs on a fake clock: step 1 takes COMPILE, the steps of
    epoch e of a phase STEP[e], every predict() EVAL; after epoch e the model answers ACCURACY[e] of
    the evaluation split right. It stands in for no framework: it makes the expected numbers known."""

    def __init__(self, clock: FakeClock, steps_per_epoch: int, epochs_per_phase: int, labels: dict[int, np.ndarray],
                 classes: int):
        self.clock, self.per_epoch, self.per_phase = clock, steps_per_epoch, epochs_per_phase
        self.labels, self.classes = labels, classes  # eval batch size -> true labels of that split
        self.steps = self.syncs = 0
        self.phase = -1

    def versions(self):
        return {"fake": "1"}

    def build(self, task, w, device, seed, **options):
        self.trained = self.per_epoch * self.per_phase * len(task.phases)  # steps before the probe

    def put_train(self, x, y):
        pass

    def set_order(self, order):
        pass

    def to_device(self, x, y):
        return x, y

    def mark(self, out):
        return out

    def wait(self, token):
        pass  # steps are synchronous here: the step is done when it returned

    def reset_device_peak(self):
        pass

    def device_memory(self):
        return {"peak_bytes": None, "in_use_bytes": None, "reserved_bytes": None}

    def matmul_fp32(self, a, b):
        return a @ b

    def settings(self):
        return {}

    def set_phase(self, index):
        self.phase = index

    def trainable_count(self):
        return 1 + self.phase

    def param_count(self):
        return 0

    def device_name(self):
        return "fake"

    def _epoch(self) -> int:
        # 0-based, counted over phases; the probe's steps count as the last epoch's (its accuracy stays)
        return min((self.steps - 1) // self.per_epoch, self.trained // self.per_epoch - 1)

    def train_step(self, x=None, y=None):
        for t in threading.enumerate():  # the first-step watcher reads the clock before it moves on
            if t.name == "bench-first-step" and t is not threading.current_thread():
                t.join()
        self.steps += 1
        if self.steps == 1:
            self.clock.now += COMPILE
        else:
            self.clock.now += PROBE if self.steps > self.trained else STEP[self._epoch() % self.per_phase]
        return 0.5

    def train_step_at(self, i):
        return self.train_step()

    def sync(self):
        self.syncs += 1

    def inference(self):
        def predict(x):  # any batch size, each call EVAL seconds: the latency fields become exact
            self.clock.now += EVAL
            return np.zeros((len(x), self.classes), np.float32)
        return predict

    def formats(self):
        return ()  # only the neutral .npz: saving and reloading are tested per framework

    def get_weights(self):
        return {"w": np.ones(3, np.float32)}

    def predict(self, x):
        self.clock.now += EVAL
        y = self.labels[len(x)]
        right = int(round(ACCURACY[self._epoch() % self.per_phase] * len(y)))
        padded = np.pad(y, (0, len(x) - len(y)))  # the evaluation batch is zero-padded to a fixed size
        answer = np.where(np.arange(len(x)) < right, padded, -1)
        if self.classes == 1:  # one logit: positive means class 1, so a wrong answer is the other sign
            return np.where(answer == -1, 1 - 2 * padded, 2 * answer - 1)[:, None].astype(np.float32)
        return np.eye(self.classes, dtype=np.float32)[np.where(answer == -1, (padded + 1) % 10, answer)]


def fake_peak_timer(n, dtype, device):
    return lambda count: 2 * n**3 * count / PEAK  # every size runs at exactly PEAK FLOP/s


def run_fake(monkeypatch, tmp_path, task_name: str, epochs: int, data_root: Path, labels, classes: int,
             adapter_class: type = ClockedAdapter):
    import types

    clock = FakeClock()
    monkeypatch.setattr("bench.harness.timing.clock", clock)
    monkeypatch.setitem(sys.modules, "impls.torch.peak", types.SimpleNamespace(matmul_timer=fake_peak_timer))
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    task = TASKS[task_name]
    holder = {}

    def load(fw, kind="adapter"):
        a = adapter_class(clock, holder["steps"], epochs, labels, classes)
        holder.setdefault("a", a)  # the trained one; a second is the reload of the saved .npz
        return a

    monkeypatch.setattr("bench.harness.train.load_adapter", load)
    monkeypatch.setattr("bench.harness.inference.load_adapter", load)
    wpath, _ = weights.materialize(task, 0, tmp_path / "w", data_root)
    cell = Cell(task=task_name, framework="torch", device="cpu", profile="smoke", dataset=task.datasets[0],
                       seed=0, epochs=epochs, data_root=str(data_root), weights_path=str(wpath))
    return cell, holder, clock


def expected_phase(steps: int, batch: int, first_phase: bool) -> dict:
    """What the worker must derive from the known step costs of one phase of three epochs."""
    epochs = [(COMPILE + (steps - 1) * STEP[0]) if first_phase else steps * STEP[0], steps * STEP[1], steps * STEP[2]]
    return {"epoch_times_s": epochs, "first_epoch_s": epochs[0], "steady_epoch_s": (epochs[1] + epochs[2]) / 2,
            "samples_per_s": steps * batch / ((epochs[1] + epochs[2]) / 2), "time_s": sum(epochs)}


def expected_windows(steps: int, m: Measurement, first_phase: bool) -> dict:
    """Step windows of one phase, from the probe after training: K warm-up steps, then full windows of M
    steps over at most one epoch's steps (every probe step costs PROBE); step 1 from the first epoch."""
    windows = (min(steps, m.warmup_steps + m.probe_steps) - m.warmup_steps) // m.window_steps
    spread = 0.0 if windows >= 2 else None
    return {"first_step_s": COMPILE if first_phase else STEP[0], "steady_step_s": PROBE if windows else None,
            "steady_step_iqr_s": spread, "steady_step_cv": spread, "step_windows": windows}


@pytest.mark.parametrize("task_name", ["mnist_mlp", "mnist_cnn"])
def test_every_derived_time_of_a_cell_is_exact_on_a_fake_clock(tmp_path, monkeypatch, task_name):
    task = TASKS[task_name]
    td = data.load(task, "mnist", PROFILES["smoke"], tmp_path)  # the bundled digits: offline
    steps = len(td.train) // task.batch_size
    labels = {task.eval_batch_size: td.test.y}
    if td.val is not None:
        assert len(td.val) != len(td.test)  # the fake tells the splits apart by their size
        labels[len(td.val)] = td.val.y
    cell, holder, clock = run_fake(monkeypatch, tmp_path, task_name, 3, tmp_path, labels, 10)
    holder["steps"] = steps
    out, events = {}, []
    run_train(cell, out, lambda ev, **kw: events.append(ev))
    want = expected_phase(steps, task.batch_size, True)
    evals = 1 + (td.val is not None)  # evaluations per epoch: test, and val where the task holds one out
    assert out["epoch_times_s"] == want["epoch_times_s"]
    assert [h["time_s"] for h in out["history"]] == want["epoch_times_s"]
    assert out["train_time_s"] == want["time_s"]
    for k in ("first_epoch_s", "steady_epoch_s", "samples_per_s"):
        assert out[k] == want[k], k
    windows = expected_windows(steps, task.measurement, True)
    assert {k: out[k] for k in windows} == windows  # dyadic step costs: exact
    assert [h["test_accuracy"] for h in out["history"]] == [round(a * len(td.test)) / len(td.test) for a in ACCURACY]
    assert all(h["test_time_s"] == EVAL for h in out["history"]) and out["eval_time_s"] == EVAL
    if td.val is not None:
        assert all(h["val_time_s"] == EVAL for h in out["history"])
    # Time to accuracy: training and every evaluation up to the first one at the target (epoch 3).
    assert out["tta_reached_epoch"] == 3 and out["time_to_accuracy_s"] == want["time_s"] + 3 * evals * EVAL
    assert out["time_to_accuracy_excl_compile_s"] == out["time_to_accuracy_s"] - (COMPILE - PROBE)
    # Efficiency: the spec's FLOPs per sample x samples/s, over the (fake, exactly known) matmul peak.
    assert out["flops_per_sample"] == task_flops(task)["train"]
    assert out["achieved_flops"] == out["flops_per_sample"] * want["samples_per_s"]
    assert out["peak_flops"] == PEAK and out["mfu"] == out["achieved_flops"] / PEAK
    assert out["test_accuracy"] == out["history"][-1]["test_accuracy"] and "phases" not in out
    assert events[0] == "rss_reset" and "start" in events
    # Each epoch's end, then the probe's: step 1, warm-up end, each window, its end. None inside an epoch.
    assert holder["a"].syncs == 3 + 2 + out["step_windows"] + 1
    # After training: every prediction call takes EVAL, so latency and throughput are known exactly.
    assert out["latency_b1_s"] == pytest.approx(EVAL, rel=1e-9) == out["latency_b1_p99_s"]
    assert out["predict_samples_per_s"] == pytest.approx(task.eval_batch_size / EVAL, rel=1e-9)
    assert out["latency_calls"] == INFERENCE.latency_calls and set(out["saved"]) == {"npz"}


def test_both_phases_of_a_transfer_cell_are_exact_on_a_fake_clock(tmp_path, monkeypatch):
    from tests.unit.test_images import make_folder

    task = TASKS["cats_vs_dogs"]
    make_folder(tmp_path / "data", n=32)  # the smoke limits: 64 training photos (2 steps of 32), 50 validation
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    val_y = np.array([0, 1] * 25, np.int32)  # val photos interleaved by class (cat = 0), 50 of 64
    cell, holder, clock = run_fake(monkeypatch, tmp_path, "cats_vs_dogs", 3, tmp_path / "data",
                                   {task.eval_batch_size: val_y}, 1)
    holder["steps"] = steps = 64 // task.batch_size
    out = {}
    run_train(cell, out, lambda ev, **kw: None)
    flops = task_flops(task)
    assert [p["name"] for p in out["phases"]] == [ph.name for ph in task.phases]
    for i, ph in enumerate(out["phases"]):
        want = {**expected_phase(steps, task.batch_size, i == 0), **expected_windows(steps, task.measurement, i == 0)}
        assert ph["time_s"] == want["time_s"] and ph["trainable_params"] == 1 + i
        for k in ("first_epoch_s", "steady_epoch_s", "samples_per_s", "first_step_s", "steady_step_s", "step_windows",
                  "steady_step_iqr_s"):
            assert ph[k] == want[k], (i, k)
        assert ph["val_accuracy"] == ACCURACY[2] and ph["eval_time_s"] == EVAL
        assert ph["achieved_flops"] == flops["phases"][ph["name"]] * want["samples_per_s"]
        assert ph["mfu"] == ph["achieved_flops"] / PEAK
    first = out["phases"][0]
    # The record's own columns are the first phase's; the time is both phases'; the accuracy the last epoch's.
    for k in ("first_epoch_s", "steady_epoch_s", "samples_per_s", "first_step_s", "steady_step_s", "achieved_flops",
              "mfu"):
        assert out[k] == first[k], k
    assert out["train_time_s"] == first["time_s"] + out["phases"][1]["time_s"]
    assert out["epoch_times_s"] == [h["time_s"] for h in out["history"]] and len(out["history"]) == 6
    assert out["test_accuracy"] == ACCURACY[2] and out["eval_split"] == "val"
    # The target (95 %) is first reached after the third epoch of phase 1: its training and 3 evaluations.
    assert out["tta_reached_epoch"] == 3 and out["time_to_accuracy_s"] == first["time_s"] + 3 * EVAL
    assert out["time_to_accuracy_excl_compile_s"] == out["time_to_accuracy_s"] - (COMPILE - PROBE)


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="Linux /proc/self/clear_refs needed")
def test_whole_process_peak_survives_the_reset_that_measures_training(tmp_path):
    # A worker whose setup peaks at ~300 MiB and whose "training" adds ~40 MiB: the reset lowers
    # the ru_maxrss wait4 reports, and the runner must still record the 300 MiB peak.
    (tmp_path / "fake_worker.py").write_text(
        "import sys\nfrom pathlib import Path\nfrom bench.harness import memory as measure, worker\n"
        "def touch(mib):\n    b = bytearray(mib * 2**20)\n    b[::4096] = b'\\1' * len(b[::4096])\n    return b\n"
        "big = touch(300)\ndel big\nout = {'status': 'ok'}\nrss = measure.start_training_rss(out, worker.emit)\n"
        "small = touch(40)\nout.update(measure.train_rss(rss))\nworker.write_json(Path(sys.argv[-1]), out)\n")
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_worker.py"} "$@"\n')
    python.chmod(0o755)
    cfg = runner.RunConfig(tasks=("mnist_mlp",), frameworks=("torch",), devices=("cpu",), out=tmp_path / "run",
                           pythons={"torch": str(python)}, timeout_s=60)
    cell = Cell(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                       epochs=1, data_root=str(tmp_path), weights_path=str(tmp_path / "none.npz"))
    rec, body = runner.run_cell(cell, cfg)
    assert rec.status == "ok", rec.error
    assert rec.setup_peak_rss_bytes >= 300 * 2**20 and rec.peak_host_rss_bytes >= rec.setup_peak_rss_bytes
    assert 40 * 2**20 <= rec.train_added_rss_bytes < 100 * 2**20
    assert rec.train_peak_rss_bytes < 300 * 2**20 and rec.train_rss_note is None


def test_memory_probes_fall_back_to_none_with_the_reason():
    assert measure.train_rss({"rss_at_reset_bytes": None, "train_rss_note": "peak RSS not reset: x"}) == {
        "train_peak_rss_bytes": None, "train_added_rss_bytes": None, "train_rss_note": "peak RSS not reset: x"}


def test_a_single_epoch_takes_its_throughput_from_the_steady_step_never_the_compiling_epoch():
    """1-epoch profiles (cats_vs_dogs smoke, quick): the epoch holds the compile, so images/s comes from the
    probe's steady step, or is null; with steady epochs their median rules."""
    assert epoch_summary([10.0], 320, 32, 0.5)["samples_per_s"] == 64.0
    assert epoch_summary([10.0], 320, 32, None)["samples_per_s"] is None
    assert epoch_summary([10.0, 2.0, 4.0], 320, 32, 0.5)["samples_per_s"] == 320 / 3.0

"""Child process for one cell: `python -m bench.worker CELL.json RESULT.json` -> a record or a failure."""
from __future__ import annotations

import json
import os
import platform
import sys
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

EVENT_PREFIX = "@bench "  # progress lines on stdout; anything else there is framework noise


@dataclass
class Cell:
    """What one worker runs: a training cell, or `logits` (one batch through the initial weights)."""

    task: str
    framework: str
    device: str
    profile: str
    dataset: str
    seed: int
    epochs: int
    data_root: str
    weights_path: str
    threads: int | None = None
    kind: str = "train"  # "train" | "logits"
    logits_path: str | None = None
    run_id: str = ""
    repeat: int = 0  # which of --repeats N (seeds differ unless --same-seed)
    mode: str = "default"  # eager | compiled (runner.plan resolves "default": bench/modes.py)
    precision: str = "fp32"  # fp32 | bf16

    def label(self) -> str:
        from bench.modes import label

        # Non-default modes/precisions are named too: their logs and cell files must not overwrite the default's.
        fw = label(self.framework, self.device, self.mode, self.precision).replace(" (", "-").replace(", ", "-").rstrip(")")
        return f"{self.task}/{fw}/{self.device}/s{self.seed}" + (f"r{self.repeat}" if self.repeat else "")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def emit(event: str, **fields: Any) -> None:
    print(EVENT_PREFIX + json.dumps({"event": event, **fields}), flush=True)


def evaluate(adapter: Any, split: Any, batch_size: int) -> tuple[float, float]:
    """Mean softmax cross-entropy and accuracy, computed in NumPy from the adapter's logits."""
    import numpy as np

    from bench.data import eval_batches

    losses, hits = 0.0, 0
    for start, (x, n) in zip(range(0, len(split), batch_size), eval_batches(split, batch_size)):
        logits = adapter.predict(x)[:n].astype(np.float64)
        y = split.y[start : start + n]
        shifted = logits - logits.max(axis=1, keepdims=True)
        logp = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses += float(-logp[np.arange(n), y].sum())
        hits += int((logits.argmax(axis=1) == y).sum())
    return losses / len(split), hits / len(split)


def run_train(cell: Cell, out: dict[str, Any], notify: Callable[..., None] = emit) -> None:
    """Train one cell, filling `out` as it goes (what was measured survives a later failure)."""
    from bench import data, efficiency, loop, measure, timing, weights
    from bench.adapter import load_adapter
    from bench.spec import PROFILES, TASKS
    from bench.vision import TransferTaskSpec

    if isinstance(TASKS[cell.task], TransferTaskSpec):
        from bench.transfer_run import run_transfer

        return run_transfer(cell, out, notify)
    t0 = measure.clock()
    adapter = load_adapter(cell.framework)  # the framework import happens here
    out["import_time_s"] = measure.clock() - t0
    out.setdefault("versions", {}).update(adapter.versions())
    task, profile = TASKS[cell.task], PROFILES[cell.profile]
    td = data.load_task_data(task, cell.dataset, profile, Path(cell.data_root))
    w = weights.load(Path(cell.weights_path), task)
    adapter.build(task, w, cell.device, cell.seed, mode=cell.mode, precision=cell.precision)
    prefetch = task.measurement.prefetch(cell.device)  # batches drawn ahead: on GPU only (bench/spec.py)
    out["settings"] = {**adapter.settings(), "input": loop.input_setting(prefetch)}
    out.update(
        param_count=adapter.param_count(), n_train=len(td.train), n_val=len(td.val) if td.val else 0,
        n_test=len(td.test), data_source=td.source, data_fingerprint=td.fingerprint,
        weights_digest=weights.digest(w), setup_time_s=measure.clock() - t0,
        setup_rss_bytes=measure.current_rss_bytes(), device_name=adapter.device_name(),
    )
    steps = len(td.train) // task.batch_size
    epoch_times: list[float] = []
    history: list[dict[str, Any]] = out.setdefault("history", [])
    rss = measure.start_training_rss(out, notify)
    windows = timing.StepWindows(task.measurement, adapter.sync)
    tta = timing.TimeToAccuracy(task.target_accuracy.get(cell.dataset))
    notify("start", epochs=cell.epochs, steps=steps)
    tta.start()  # after model build and the RSS reset, before the first batch is drawn; never paused
    for epoch in range(cell.epochs):
        batches = data.train_batches(td.train, cell.seed, epoch, task.batch_size)
        # Evaluation below is outside train_time_s, inside the TTA clock.
        elapsed, losses = loop.train_epoch(adapter, batches, windows, prefetch)
        epoch_times.append(elapsed)
        row: dict[str, Any] = {"epoch": epoch + 1, "time_s": elapsed,
                               "train_loss": sum(float(v) for v in losses) / len(losses)}
        if td.val is not None:
            t = measure.clock()
            row["val_loss"], row["val_accuracy"] = evaluate(adapter, td.val, task.eval_batch_size)
            row["val_time_s"] = measure.clock() - t
        t = measure.clock()  # the test split after every epoch: the TTA cadence and the learning curve
        row["test_loss"], row["test_accuracy"] = evaluate(adapter, td.test, task.eval_batch_size)
        row["test_time_s"] = measure.clock() - t
        tta.check(epoch + 1, row["test_accuracy"])
        history.append(row)
        out.update(epoch_times_s=epoch_times, **windows.summary(), **tta.summary())
        notify("epoch", **row, epochs=cell.epochs)
    out.update(measure.train_rss(rss))
    out["train_time_s"] = sum(epoch_times)
    out.update(measure.epoch_summary(epoch_times, steps * task.batch_size))
    # The last epoch's test evaluation is the final one: the weights have not changed since.
    out["test_loss"], out["test_accuracy"] = history[-1]["test_loss"], history[-1]["test_accuracy"]
    out["eval_time_s"] = history[-1]["test_time_s"]
    out["peak_device_bytes"] = adapter.device_peak_bytes()
    out["eval_split"] = "test"
    efficiency.annotate(out, cell)  # last: the peak microbenchmark must not perturb training or memory peaks


def run_logits(cell: Cell, out: dict[str, Any]) -> None:
    """The first `verify_batch` smoke test images through the initial weights, saved as .npy."""
    import numpy as np

    from bench import data, weights
    from bench.adapter import load_adapter
    from bench.spec import PROFILES, TASKS

    task = TASKS[cell.task]
    if cell.kind == "logits" and hasattr(task, "backbone"):
        return _transfer_logits(cell, out)
    adapter = load_adapter(cell.framework)
    out.setdefault("versions", {}).update(adapter.versions())
    td = data.load_task_data(task, cell.dataset, PROFILES["smoke"], Path(cell.data_root))
    adapter.build(task, weights.load(Path(cell.weights_path), task), cell.device, cell.seed)
    out["param_count"] = adapter.param_count()
    logits = adapter.predict(np.ascontiguousarray(td.test.x[: task.verify_batch]))
    assert cell.logits_path
    np.save(cell.logits_path, logits, allow_pickle=False)


def _transfer_logits(cell: Cell, out: dict[str, Any]) -> None:
    """The sample photos through the ImageNet classifier and the new head: (n, 1000 + 1) logits."""
    import numpy as np

    from bench import images, weights
    from bench.adapter import load_adapter
    from bench.spec import TASKS

    task = TASKS[cell.task]
    adapter = load_adapter(cell.framework, "transfer")
    out.setdefault("versions", {}).update(adapter.versions())
    x = images.normalize(np.stack([images.load_photo(images.sample_photo(n), task)  # type: ignore[arg-type]
                                   for n in images.SAMPLE_PHOTOS]), task)  # type: ignore[arg-type]
    adapter.build(task, weights.load(Path(cell.weights_path), task), cell.device, cell.seed)
    out["param_count"] = adapter.param_count()
    logits = np.concatenate([adapter.predict_imagenet(x), adapter.predict(x)], axis=1)
    assert cell.logits_path
    np.save(cell.logits_path, logits, allow_pickle=False)


def classify(exc: BaseException, framework: str) -> tuple[str, str]:
    """(status, message): a missing framework or device is a skip, anything else a failure."""
    from bench.adapter import FRAMEWORK_PACKAGES, DeviceUnavailable, NotApplicable

    if isinstance(exc, (DeviceUnavailable, NotApplicable)):
        return "skipped", str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in FRAMEWORK_PACKAGES[framework]:
        return "skipped", f"{exc.name} is not installed for this interpreter (pip install 'bench[{framework}]')"
    return "failed", f"{type(exc).__name__}: {exc}{memory_hint(exc)}"


def memory_hint(exc: BaseException) -> str:
    """Out of memory shows up as MemoryError, or as odd import/mmap errors under a ulimit: say so."""
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        return (f" (this worker ran under a {soft / 2**20:,.0f} MiB address-space limit, ulimit -v: "
                "running out of memory is the likely cause)")
    return " (out of memory)" if isinstance(exc, MemoryError) else ""


def write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, default=str, allow_nan=False))
    os.replace(tmp, path)


PARENT_ENV = "BENCH_RUNNER_PID"  # set by the runner: the process whose death ends this worker


def die_with_runner() -> None:
    """End this worker when the runner dies, so a killed `bench run` leaves no orphan training on.

    A direct child asks the kernel for SIGKILL at the runner's death (Linux PR_SET_PDEATHSIG). Started
    through a wrapper script (--python), or after the runner already died, its parent is not the
    runner: a daemon thread then checks once a second that the runner still exists.
    """
    import ctypes
    import signal
    import threading

    runner = int(os.environ.get(PARENT_ENV) or 0)
    if not runner:
        return
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        if os.getppid() == runner:
            return
    threading.Thread(target=_watch, args=(runner,), name="bench-runner-watch", daemon=True).start()


def _watch(pid: int) -> None:
    import time

    while True:
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # it exists (under another user): keep watching
        time.sleep(1.0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.worker CELL.json RESULT.json", file=sys.stderr)
        return 2
    die_with_runner()
    cell = Cell(**json.loads(Path(argv[0]).read_text()))
    if cell.threads:
        # JAX has no thread-count flag: pinning the process to N cores is what bounds it.
        cpus = sorted(os.sched_getaffinity(0))
        if cell.threads < len(cpus):
            os.sched_setaffinity(0, cpus[: cell.threads])
    out: dict[str, Any] = {"started_at": _now(), "status": "ok", "versions": {"python": platform.python_version()}}
    try:
        (run_logits if cell.kind == "logits" else run_train)(cell, out)
    except BaseException as exc:  # noqa: BLE001 - the worker reports every failure as data
        out["status"], out["error"] = classify(exc, cell.framework)
        out["traceback"] = traceback.format_exc() if out["status"] == "failed" else None
        if isinstance(exc, KeyboardInterrupt):
            out["error"] = "interrupted"
    out["finished_at"] = _now()
    write_json(Path(argv[1]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


"""Child process for one cell: `python -m bench.harness.worker CELL.json RESULT.json` -> a record or a failure."""
from __future__ import annotations

import json
import os
import platform
import signal
import sys
import traceback
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.files import write_atomic
from bench.harness import ranks
from bench.harness.cell import Cell
from bench.spec.sweep import BASELINE

EVENT_PREFIX = "@bench "  # progress lines on stdout; anything else there is framework noise


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def emit(event: str, **fields: Any) -> None:
    print(EVENT_PREFIX + json.dumps({"event": event, **fields}), flush=True)


def run_logits(cell: Cell, out: dict[str, Any]) -> None:
    """The task's verification inputs through the initial weights, saved as .npy: the model's logits,
    after the auxiliary head's where the task has one."""
    import numpy as np

    from bench import data, weights
    from bench.harness.adapter import load_adapter
    from bench.spec import TASKS

    task = TASKS[cell.task]
    adapter = load_adapter(cell.framework)
    out.setdefault("versions", {}).update(adapter.versions())
    x = data.verification_inputs(task, Path(cell.data_root))
    adapter.build(task, weights.load(Path(cell.weights_path), task), cell.device, cell.seed)
    out["param_count"] = adapter.param_count()
    logits = adapter.predict(x)
    if task.aux_head is not None:
        logits = np.concatenate([adapter.predict_aux(x), logits], axis=1)
    assert cell.logits_path
    np.save(cell.logits_path, logits, allow_pickle=False)


def classify(exc: BaseException, framework: str) -> tuple[str, str]:
    """(status, message): a missing framework or device is a skip, anything else a failure."""
    from bench.harness.adapter import FRAMEWORK_PACKAGES, DeviceUnavailable, NotApplicable

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
    write_atomic(path, json.dumps(obj, default=str, allow_nan=False))


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
    # A torchrun rank whose launcher died before the prctl above is already orphaned (adopted by init).
    parent = os.getppid()
    if parent == 1:
        os._exit(1)
    threading.Thread(target=_watch, args=(runner, parent), name="bench-runner-watch", daemon=True).start()


def _watch(pid: int, parent: int) -> None:
    import time

    while True:
        try:
            os.kill(pid, 0)  # signal 0: only asks whether the process exists
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            pass  # it exists (under another user): keep watching
        if os.getppid() != parent:  # the launcher between us (torchrun, a --python wrapper) is gone
            os._exit(1)
        time.sleep(1.0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.harness.worker CELL.json RESULT.json", file=sys.stderr)
        return 2
    die_with_runner()
    cell = Cell(**json.loads(Path(argv[0]).read_text()))
    if cell.threads:
        # JAX has no thread-count flag: pinning the process to N cores is what bounds it. torchrun's
        # ranks share the cell's N cores, a slice each.
        cpus = sorted(os.sched_getaffinity(0))
        share = ranks.cpu_share(cpus, cell.threads)
        if share != cpus:
            os.sched_setaffinity(0, share)
    notify = emit if ranks.primary() else _quiet  # rank 0 speaks for a data-parallel cell
    if ranks.world() > 1:
        signal.signal(signal.SIGTERM, _terminated)  # torchrun ends the other ranks when one fails: report it
    # numpy's too: the worker's interpreter may have its own (bench ab compares interpreters)
    out: dict[str, Any] = {"started_at": _now(), "status": "ok",
                           "versions": {"python": platform.python_version(), "numpy": metadata.version("numpy")}}
    try:
        if cell.kind == "logits":
            run_logits(cell, out)
        elif cell.framework == BASELINE:
            from bench.harness.classical import run_baseline

            run_baseline(cell, out, notify)
        else:
            from bench.harness.train import run_train  # inside the try: a broken install is a failed cell too

            run_train(cell, out, notify)
    except BaseException as exc:  # noqa: BLE001 - the worker reports every failure as data
        _report_only()
        out["status"], out["error"] = classify(exc, cell.framework)
        out["traceback"] = traceback.format_exc() if out["status"] == "failed" else None
        if isinstance(exc, KeyboardInterrupt):
            out["error"] = "interrupted"
    _report_only()
    out["finished_at"] = _now()
    if not ranks.primary():
        # A failed rank exits non-zero so that torchrun ends the others (they wait in a collective).
        return 1 if out["status"] == "failed" else 0
    write_json(Path(argv[1]), out)
    return 1 if ranks.world() > 1 and out["status"] == "failed" else 0


class Terminated(Exception):
    """SIGTERM from torchrun, which ends every rank once one has failed."""


def _terminated(signum: int, frame: Any) -> None:
    # Raised in the main thread: the record keeps what rank 0 measured, and says why it stopped; unless
    # it is already handling a failure (a collective's error when a peer died), which is then the report.
    if sys.exc_info()[1] is None:
        raise Terminated("stopped by torchrun (SIGTERM) after another rank failed")


def _report_only() -> None:
    """From here on the worker only writes its result: a late SIGTERM must not cut that short."""
    if ranks.world() > 1:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _quiet(event: str, **fields: Any) -> None:
    """The events of a rank other than 0: nobody reads them."""


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


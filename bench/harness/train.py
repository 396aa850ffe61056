"""The one training loop of a cell: any task, phase by phase, epoch by epoch, filling the record as it goes."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import data, weights
from bench.data import TaskData, subsets
from bench.harness import caches, efficiency, faults, inference, loop, memory, nvml, probe, ranks, slowdown, tf32
from bench.harness.adapter import load_adapter
from bench.harness.cell import Cell
from bench.harness.devmem import DeviceMemory
from bench.harness.evaluate import evaluate
from bench.harness.timing import FirstStep, TimeToAccuracy, epoch_summary, now, tta_without_compile
from bench.spec import TASKS, PhotoInput, TaskSpec, optimizer_axis

Notify = Callable[..., None]
# The record's own columns are the first phase's; `phases` holds every phase's (tasks with several).
PHASE_COLUMNS = ("first_epoch_s", "steady_epoch_s", "samples_per_s", "first_step_s", "steady_step_s",
                 "steady_step_iqr_s", "steady_step_cv", "step_windows")


@dataclass
class Run:
    """One cell in training: what every phase and epoch reads and appends to."""

    cell: Cell
    task: TaskSpec
    td: TaskData
    adapter: Any
    prefetch: int  # batches drawn ahead (bench/spec/protocol.py); 0: in the training thread
    out: dict[str, Any]
    notify: Notify
    tta: TimeToAccuracy
    memory: DeviceMemory
    resident: bool  # the training split lives on the device (loop.resident_steps)
    times: list[float] = field(default_factory=list)  # every epoch's training seconds, over all phases

    @property
    def steps(self) -> int:
        return self.td.train.samples // self.task.batch_size

    def epoch_steps(self, epoch: int) -> Iterator[loop.Step]:
        """The steps of `epoch` (counted over all phases: each continues the shared order stream)."""
        bs, seed = self.task.batch_size, self.cell.seed
        if self.resident:
            return loop.resident_steps(self.adapter, data.train_order(self.td.train, seed, epoch, bs), bs)
        return loop.host_steps(self.adapter, data.train_batches(self.task, self.td.train, seed, epoch), self.prefetch)


def run_train(cell: Cell, out: dict[str, Any], notify: Notify) -> None:
    """Train one cell, filling `out` as it goes (what was measured survives a later failure)."""
    run = setup(cell, out, notify)
    rss = memory.start_training_rss(out, notify)
    run.memory.start()
    run.notify("start", epochs=cell.epochs * len(run.task.phases), steps=run.steps)
    run.tta.start()  # after model build and the RSS reset, before the first batch; never paused
    phases = [train_phase(run, p) for p in range(len(run.task.phases))]
    out.update(memory.train_rss(rss))
    out.update(run.memory.summary())
    out["train_time_s"] = sum(run.times)
    last = out["history"][-1]  # the last epoch's evaluation is the final one: no step came after it
    split = run.td.eval_split
    out.update(test_loss=last[f"{split}_loss"], test_accuracy=last[f"{split}_accuracy"],
               eval_time_s=last[f"{split}_time_s"])
    summarize(run, phases)  # first without the probe's figures: they survive a failing probe
    for p in reversed(range(len(phases))):  # the probe, after every figure above; the current phase first
        phases[p].update(probe.measure(run, p, current=min(p + 1, len(phases) - 1)))
    summarize(run, phases)
    if not ranks.primary():
        return  # the other ranks of a data-parallel cell trained; rank 0 measures the rest alone
    if cell.inference:
        inference.measure(run.adapter, run.task, run.td, cell, out)  # after the peaks: not part of training
    efficiency.annotate(out, cell)  # last: the peak microbenchmark must not perturb training or memory peaks


def summarize(run: Run, phases: list[dict[str, Any]]) -> None:
    """Each phase's epoch figures (throughput from its steady epochs, or its probe's steady step), the
    record's columns from the first phase, and time to accuracy without the compiles."""
    for p, phase in enumerate(phases):
        times = run.times[p * run.cell.epochs:(p + 1) * run.cell.epochs]
        phase.update(epoch_summary(times, run.steps * run.task.batch_size, run.task.batch_size,
                                   phase.get("steady_step_s")))
    run.out.update({k: phases[0].get(k) for k in PHASE_COLUMNS})
    run.out["time_to_accuracy_excl_compile_s"] = tta_without_compile(
        run.out.get("time_to_accuracy_s"), run.out.get("tta_reached_epoch"), phases, run.cell.epochs)
    if len(phases) > 1:
        run.out["phases"] = phases


def setup(cell: Cell, out: dict[str, Any], notify: Notify) -> Run:
    """Import the framework, load data and weights, build the model: everything before the first batch."""
    task = optimizer_axis.apply(TASKS[cell.task], cell.optimizer)
    t0 = now()
    adapter = load_adapter(cell.framework)  # the framework import happens here
    out["import_time_s"] = now() - t0
    out.setdefault("versions", {}).update(adapter.versions())
    td = subsets.apply(data.load(task, cell.dataset, task.profiles[cell.profile], Path(cell.data_root)),
                       cell.train_size, cell.seed, task.batch_size)
    w = weights.load(Path(cell.weights_path), task)
    adapter.build(task, w, cell.device, cell.seed, mode=cell.mode, precision=cell.precision, devices=cell.devices)
    prefetch = task.measurement.prefetch(cell.device)
    # Pixels already scaled (MNIST) live on the device; photos are gathered, flipped and normalised per batch.
    resident = not isinstance(task.input, PhotoInput) and cell.devices == 1
    if resident:
        adapter.put_train(td.train.x, td.train.y)
    settings = adapter.settings()
    out["launcher"] = settings.pop("launcher", "one process, one device")
    out["settings"] = {**settings, "input": loop.input_setting(resident, prefetch),
                       "tf32_check": tf32.check(adapter.matmul_fp32), "compile_caches": caches.describe()}
    hook = slowdown.apply(adapter, cell.framework)
    if hook:
        out["settings"]["test_slowdown"] = hook
    fault = faults.apply(adapter)
    if fault:
        out["settings"]["test_fault"] = fault
    out.update(
        param_count=adapter.param_count(), n_train=len(td.train),
        train_passes=td.train.passes if cell.train_size else None,
        n_val=len(td.val) if td.val else 0,
        n_test=len(td.test), eval_split=td.eval_split, data_source=td.source, data_fingerprint=td.fingerprint,
        data_skipped=td.skipped, weights_digest=weights.digest(w), setup_time_s=now() - t0,
        setup_rss_bytes=memory.current_rss_bytes(), device_name=adapter.device_name(),
    )
    out.setdefault("history", [])
    return Run(cell, task, td, adapter, prefetch, out, notify, TimeToAccuracy(task.target_accuracy.get(cell.dataset)),
               DeviceMemory(adapter, cell.framework, nvml.sampler(cell.device)), resident)


def train_phase(run: Run, p: int) -> dict[str, Any]:
    """The epochs of phase p; returns the phase's summary (times, steps, throughput, last evaluation)."""
    phase = run.task.phases[p]
    run.adapter.set_phase(p)
    first = FirstStep(run.adapter)  # per phase: a new phase compiles anew
    times: list[float] = []
    for e in range(run.cell.epochs):
        row = train_epoch(run, p, p * run.cell.epochs + e, first if e == 0 else None)
        times.append(row["time_s"])
        if e == 0:
            first_step = first.seconds()
    split = run.td.eval_split
    return {"name": phase.name, "epochs": run.cell.epochs, "trainable_params": run.adapter.trainable_count(),
            "time_s": sum(times), "first_step_s": first_step,
            f"{split}_loss": row[f"{split}_loss"], f"{split}_accuracy": row[f"{split}_accuracy"],
            "eval_time_s": row[f"{split}_time_s"]}


def train_epoch(run: Run, p: int, epoch: int, first: FirstStep | None) -> dict[str, Any]:
    """One timed epoch of phase p (epoch counted over all phases: each phase continues the shared order
    stream), then its evaluations, outside the training time and inside the time-to-accuracy clock."""
    elapsed, losses = loop.train_epoch(run.adapter, run.epoch_steps(epoch), first=first)
    run.times.append(elapsed)
    run.memory.after_training()
    row: dict[str, Any] = {"phase": run.task.phases[p].name} if len(run.task.phases) > 1 else {}
    row.update(epoch=epoch + 1, time_s=elapsed, train_loss=sum(float(v) for v in losses) / len(losses))
    for name, split in (("val", run.td.val), (run.td.eval_split, run.td.test)):
        if split is not None:
            t = now()
            row[f"{name}_loss"], row[f"{name}_accuracy"] = evaluate(run.adapter, run.task, split)
            row[f"{name}_time_s"] = now() - t
    run.memory.after_eval()
    run.tta.check(row["epoch"], row[f"{run.td.eval_split}_accuracy"])
    run.out["history"].append(row)
    run.out.update(epoch_times_s=list(run.times), **run.tta.summary())
    run.notify("epoch", **row, epochs=run.cell.epochs * len(run.task.phases))
    return row

"""What one worker runs: the runner writes it as JSON, the worker reads it."""
from __future__ import annotations

from dataclasses import dataclass

from bench.spec import optimizer_axis
from bench.spec.modes import label


@dataclass
class Cell:
    """A training cell, or `logits` (the verification inputs through the initial weights, for `bench verify`)."""

    task: str
    framework: str
    device: str
    profile: str
    dataset: str
    seed: int
    epochs: int  # per phase
    data_root: str
    weights_path: str
    threads: int | None = None
    kind: str = "train"  # "train" | "logits"
    logits_path: str | None = None
    run_id: str = ""
    repeat: int = 0  # which of --repeats N (seeds differ unless --same-seed)
    mode: str = "default"  # eager | compiled (the plan resolves "default": bench/spec/modes.py)
    precision: str = "fp32"  # fp32 | bf16
    side: str | None = None  # part of the cell key; set on records by `bench ab`, never by a plain run
    train_size: int | None = None  # a size sweep's class-balanced subset (bench/data/subsets.py); None: all
    optimizer: str | None = None  # bench/spec/optimizer_axis.py NAMES (the plan names the task's own); None: baselines
    inference: bool = True  # measure prediction and saving after training (bench/harness/inference.py)
    devices: int = 1  # data-parallel over this many devices of kind `device` (docs/distributed.md)

    def label(self) -> str:
        """task/framework/device/seed, the mode and precision named when they are not the default (the
        logs and cell files of two variants must not overwrite each other)."""
        fw = label(self.framework, self.device, self.mode, self.precision, self.devices)
        fw = fw.replace(" (", "-").replace(", ", "-").rstrip(")").replace(" ×", "-x")
        size = f"/n{self.train_size}" if self.train_size else ""
        other = optimizer_axis.off_default(self.task, self.optimizer)
        size += f"/{other}" if other else ""
        return f"{self.task}{size}/{fw}/{self.device}/s{self.seed}" + (f"r{self.repeat}" if self.repeat else "")

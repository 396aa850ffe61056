"""The cells of a run, in the order they run, and the initial weights they name."""
from __future__ import annotations

from typing import Any

from bench import weights
from bench.harness.cell import Cell
from bench.runner.config import RunConfig
from bench.spec import TASKS, resolve_epochs
from bench.spec.modes import resolve_mode
from bench.spec.sweep import BASELINE


def plan(cfg: RunConfig, kind: str = "train") -> list[Cell]:
    """Cells in run order (task, device, repeat, training-set size, optimizer, framework); pure: writes
    nothing (see write_weights).

    Repeats outside and frameworks inside: slow drift of the machine (heat, neighbours) spreads over
    every framework instead of landing on one. The frameworks' order rotates by one per repeat (tf, torch,
    jax; then torch, jax, tf; ...), so no framework always runs first (on a cold machine) or right after
    the same one. Classical baselines run on the CPU only, once per run, after the networks.
    """
    cells = []
    for task_name in cfg.tasks:
        for device in cfg.devices:
            for repeat in range(cfg.repeats):
                for size in cfg.train_sizes:
                    cells += _cells(cfg, task_name, device, repeat, size, kind)
    return cells


def _cells(cfg: RunConfig, task_name: str, device: str, repeat: int, size: int | None, kind: str) -> list[Cell]:
    """One cell per framework (a baseline: one per classical baseline of the task) of one (device, repeat, size)."""
    task = TASKS[task_name]
    seed = cfg.seed if cfg.same_seed else cfg.seed + repeat
    path = (cfg.out / "weights" / weights.file_name(task, seed, kind == "logits")).resolve()
    common: dict[str, Any] = dict(
        task=task_name, profile=cfg.profile, dataset=cfg.dataset_of(task_name), seed=seed, weights_path=str(path),
        data_root=str(cfg.data_root.resolve()), threads=cfg.threads, kind=kind, run_id=cfg.run_id, repeat=repeat,
        train_size=size, precision=cfg.precision, inference=cfg.inference)
    epochs = resolve_epochs(task, cfg.profile, cfg.epochs)
    nets = [fw for fw in cfg.frameworks if fw != BASELINE]
    turn = repeat % len(nets) if nets else 0
    out = [Cell(**common, framework=fw, device=device, epochs=epochs, mode=resolve_mode(fw, device, cfg.mode),
                optimizer=opt, devices=cfg.n_devices)
           for opt in cfg.optimizers_of(task_name) for fw in nets[turn:] + nets[:turn]]
    if BASELINE in cfg.frameworks and device == cfg.devices[0]:  # no optimizer: one fit each
        out += [Cell(**common, framework=BASELINE, device="cpu", epochs=0, mode=b) for b in cfg.baselines_of(task_name)]
    return out


def write_weights(cells: list[Cell], cfg: RunConfig) -> None:
    """Each (task, seed)'s initial weights, once, at the path its cells name (logits cells: `bench verify`'s)."""
    for task_name, seed, kind in dict.fromkeys((c.task, c.seed, c.kind) for c in cells):
        weights.materialize(TASKS[task_name], seed, cfg.out / "weights", cfg.data_root, verification=kind == "logits")

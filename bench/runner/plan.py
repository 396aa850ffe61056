"""The cells of a run, in the order they run, and the initial weights they name."""
from __future__ import annotations

from bench import weights
from bench.harness.cell import Cell
from bench.runner.config import RunConfig
from bench.spec import TASKS, resolve_epochs
from bench.spec.modes import resolve_mode


def plan(cfg: RunConfig, kind: str = "train") -> list[Cell]:
    """Cells in run order (task, device, repeat, framework); pure: writes nothing (see write_weights).

    Repeats outermost and frameworks inside: slow drift of the machine (heat, neighbours) spreads
    over every framework instead of landing on one.
    """
    cells = []
    for task_name in cfg.tasks:
        task = TASKS[task_name]
        for device in cfg.devices:
            for repeat in range(cfg.repeats):
                seed = cfg.seed if cfg.same_seed else cfg.seed + repeat
                for fw in cfg.frameworks:
                    cells.append(Cell(
                        task=task_name, framework=fw, device=device, profile=cfg.profile,
                        dataset=cfg.dataset_of(task_name), seed=seed,
                        epochs=resolve_epochs(task, cfg.profile, cfg.epochs), data_root=str(cfg.data_root.resolve()),
                        weights_path=str((cfg.out / "weights" / weights.file_name(task, seed, kind == "logits"))
                                         .resolve()),
                        threads=cfg.threads, kind=kind, run_id=cfg.run_id, repeat=repeat,
                        mode=resolve_mode(fw, device, cfg.mode), precision=cfg.precision,
                    ))
    return cells


def write_weights(cells: list[Cell], cfg: RunConfig) -> None:
    """Each (task, seed)'s initial weights, once, at the path its cells name (logits cells: `bench verify`'s)."""
    for task_name, seed, kind in dict.fromkeys((c.task, c.seed, c.kind) for c in cells):
        weights.materialize(TASKS[task_name], seed, cfg.out / "weights", cfg.data_root, verification=kind == "logits")

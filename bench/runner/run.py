"""A run: every planned cell in turn, each record appended as soon as it exists."""
from __future__ import annotations

from collections.abc import Callable

from bench import records
from bench.records import Record
from bench.runner.config import RunConfig
from bench.runner.execute import EventHandler, Interrupted, run_cell
from bench.runner.plan import plan, write_weights


def run(cfg: RunConfig, on_event: EventHandler | None = None,
        on_record: Callable[[Record], None] | None = None,
        skip: set[tuple[object, ...]] | frozenset[tuple[object, ...]] = frozenset()) -> tuple[list[Record], bool]:
    """Run every cell not in `skip` (records.cell_key), appending each record to out/records.jsonl
    as soon as it exists. Returns the new records and whether the user interrupted the run."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    done: list[Record] = []
    cells = [c for c in plan(cfg) if records.cell_key(c) not in skip]
    write_weights(cells, cfg)

    def keep(rec: Record) -> None:
        records.append(cfg.out / records.RECORDS_FILE, [rec])
        done.append(rec)
        if on_record:
            on_record(rec)

    if cfg.executor == "slurm":
        from bench.runner.slurm import run_jobs  # submitit only for SLURM runs

        unfinished, interrupted = run_jobs(cells, cfg, on_event, keep)
        records.append(cfg.out / records.RECORDS_FILE, unfinished)
        return done + unfinished, interrupted
    for cell in cells:
        try:
            rec, _ = run_cell(cell, cfg, on_event)
        except Interrupted as stop:
            records.append(cfg.out / records.RECORDS_FILE, [stop.record])
            done.append(stop.record)
            return done, True
        keep(rec)
    return done, False

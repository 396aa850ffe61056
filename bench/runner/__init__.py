"""The parent side of the process model: plan the cells of a run, isolate each in its own worker
process, collect what it measured (or why it failed) as a record, and compare logits (verify)."""
from bench.runner.config import RunConfig
from bench.runner.execute import Interrupted, run_cell
from bench.runner.plan import plan, write_weights
from bench.runner.run import run

__all__ = ["Interrupted", "RunConfig", "plan", "run", "run_cell", "write_weights"]

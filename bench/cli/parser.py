"""The command line's grammar: run | ab | list | verify | report | compare | baseline | history."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from bench import machine
from bench.cli.args import bounded_int, positive_float
from bench.errors import UsageError
from bench.spec import DATASETS, DEFAULT_TASKS, FRAMEWORKS, PROFILES, TASKS
from bench.spec.optimizers import NAMES
from bench.spec.sweep import BASELINE, BASELINES, TRAIN_SIZE_PRESETS

MAX_EPOCHS = 10_000
AB_ROUNDS = 20  # bench ab's default: the measured power behind it is in docs/regression.md


class Parser(argparse.ArgumentParser):
    """argparse that reports bad input in one line (what was wrong, where to look) and exits 2."""

    def error(self, message: str) -> None:  # type: ignore[override]  # raises instead of exiting
        sub = " ".join(self.prog.split()[1:])  # "bench run" -> "run"; the top-level parser has none
        raise UsageError(f"{message} (see: python -m bench {sub + ' ' if sub else ''}--help)")


def _common(p: argparse.ArgumentParser, *, devices: bool = True, tasks: Sequence[str] = tuple(TASKS)) -> None:
    default = "all" if list(tasks) == list(TASKS) else ",".join(tasks)
    p.add_argument("--task", default=default, help=f"comma list of {', '.join(TASKS)} or all (default: {default})")
    p.add_argument("--framework", default="all",
                   help=f"comma list of {', '.join(FRAMEWORKS)} or all (default: all), and {BASELINE} for the "
                        "classical "
                        "baselines (bench run only)")
    if devices:
        p.add_argument("--device", default="cpu", help="cpu, gpu or cpu,gpu (default: cpu)")
    p.add_argument("--data-root", type=Path, default=None,
                   help="folder with one sub-folder per dataset (default: $BENCH_DATA or ~/.cache/bench/data)")
    p.add_argument("--python", default=None, metavar="FW=EXE,...",
                   help="run a framework under its own interpreter, e.g. torch=/envs/torch/bin/python "
                        "(also $BENCH_PYTHON_TF, $BENCH_PYTHON_TORCH, $BENCH_PYTHON_JAX)")
    p.add_argument("--timeout", type=positive_float, default=3600.0, help="seconds per cell (default: 3600)")


def _cell_options(p: argparse.ArgumentParser) -> None:
    """What a cell is run with: shared by run and ab."""
    p.add_argument("--profile", default="smoke", help=f"{', '.join(PROFILES)} (default: smoke)")
    p.add_argument("--dataset", default=None, help=f"{', '.join(DATASETS)} (default: each task's own)")
    p.add_argument("--epochs", type=bounded_int(1, MAX_EPOCHS), default=None,
                   help="override the profile's epochs (per phase)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0, help="weights, data order and dropout seed")
    p.add_argument("--threads", type=bounded_int(1, 4096), default=None,
                   help="CPU threads per worker, the same for every framework "
                        f"(default: all {machine.available_cpus()})")
    p.add_argument("--mode", default="default", metavar="default|eager|compiled",
                   help="eager: torch eager, Keras tf.function without XLA; compiled: torch.compile, Keras with "
                        "XLA (jit_compile=True), JAX jit (JAX has no eager mode: its cells are skipped); default: "
                        "each framework's own (torch eager, Keras XLA on GPU only, JAX jit)")
    p.add_argument("--precision", default="fp32", metavar="fp32|bf16",
                   help="fp32 (TF32 off on GPU, default) or bf16 mixed precision (fp32 weights, logits and loss)")
    p.add_argument("--devices", type=bounded_int(1, 64), default=1, metavar="N",
                   help="train every network cell data-parallel on N devices of its kind (torchrun, "
                        "MirroredStrategy, a JAX mesh); N divides each batch (default: 1; docs/distributed.md)")
    p.add_argument("--gpu", default=None, metavar="INDEX[,INDEX...]",
                   help="the GPUs a GPU cell sees (CUDA_VISIBLE_DEVICES, nvidia-smi's numbering): the first N "
                        "for --devices N (default: 0, or 0..N-1), so no framework opens a context on the others")
    p.add_argument("--warm-caches", action="store_true",
                   help="keep the user's on-disk compile caches (inductor, Triton, CUDA, JAX); default: each cell "
                        "gets fresh, private ones, so a repeat never starts warm (docs/protocol.md)")
    p.add_argument("--no-inference", action="store_true",
                   help="skip what every cell measures after training: prediction latency and throughput, "
                        "saving and reloading the model (docs/inference.md); training figures are unchanged")


def _run(sub: argparse._SubParsersAction[Parser]) -> None:
    run = sub.add_parser("run", help="train every (task, framework, device) cell and print the comparison")
    _common(run, tasks=DEFAULT_TASKS)
    _cell_options(run)
    run.add_argument("--repeats", type=bounded_int(1, 100), default=1,
                     help="independent runs per cell, seeds SEED..SEED+N-1; tables show medians, 95%% CI and CV")
    run.add_argument("--same-seed", action="store_true",
                     help="repeats all use SEED (same weights, order, dropout): the spread is the machine's "
                          "noise alone")
    run.add_argument("--train-size", default=None, metavar="N,N,...|all|" + "|".join(TRAIN_SIZE_PRESETS),
                     help="a training-set-size sweep: one cell per size, each a class-balanced subset (nested, drawn "
                          "from the seed, the same for every framework), whole batches; all = the whole split. "
                          "Every size trains the optimizer steps of the whole split. Presets: "
                          + "; ".join(f"{k} = {','.join(str(n or 'all') for n in v)}"
                                      for k, v in TRAIN_SIZE_PRESETS.items()))
    run.add_argument("--baseline", default=None, metavar="NAME,...",
                     help=f"with --framework {BASELINE}: which classical baselines (default: each task's own: "
                          + "; ".join(f"{k}: {', '.join(b.name for b in v)}" for k, v in BASELINES.items()) + ")")
    run.add_argument("--optimizer", default=None, metavar="NAME,...|all",
                     help="an optimizer axis: one cell per optimizer, each an exact rule with the task's learning "
                          f"rate for it (docs/optimizers.md): {', '.join(NAMES)}; default: each task's own")
    run.add_argument("--executor", default="local", metavar="local|slurm",
                     help="local: each cell a subprocess here (default); slurm: each cell a SLURM job through "
                          "submitit (docs/cluster.md)")
    run.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                     help="a SLURM option for every job, e.g. partition=gpu, account=ml, exclusive=false (repeatable)")
    run.add_argument("--out", type=Path, default=None, help="results folder (default: results/<run id>)")
    run.add_argument("--history", type=Path, nargs="?", const=Path("results/history"), default=None, metavar="DIR",
                     help="also append this run's records to DIR/<machine>.jsonl (default DIR: results/history)")
    run.add_argument("--resume", type=Path, default=None, metavar="DIR",
                     help="continue the run in DIR (same arguments): run only its cells that have no ok record")


def _ab(sub: argparse._SubParsersAction[Parser]) -> None:
    ab = sub.add_parser("ab", help="the same cells under two sides (git revisions or framework interpreters), "
                                   "interleaved on this machine, with a paired gate (exit 1 on a regression)")
    ab.add_argument("a_pos", nargs="?", metavar="A", help="side A: a git revision (e.g. HEAD~1, main) or FW=EXE,...")
    ab.add_argument("b_pos", nargs="?", metavar="B", help="side B, the same forms (the one that may have regressed)")
    ab.add_argument("--a", dest="a_opt", metavar="SIDE", help="side A, as A (e.g. torch=/envs/old/bin/python)")
    ab.add_argument("--b", dest="b_opt", metavar="SIDE", help="side B, as the positional B")
    for s in ("a", "b"):
        ab.add_argument(f"--env-{s}", action="append", metavar="NAME=VALUE",
                        help=f"an environment variable for side {s.upper()}'s runs (repeatable)")
    _common(ab, tasks=DEFAULT_TASKS)
    _cell_options(ab)
    ab.add_argument("--rounds", type=bounded_int(2, 1000), default=AB_ROUNDS,
                    help=f"interleaved rounds; each runs every cell once per side (default: {AB_ROUNDS}, from the "
                         "measured power in docs/regression.md)")
    ab.add_argument("--threshold", default=None, metavar="step=5%,first_step=10%,memory=5%,accuracy=0.5pp",
                    help="how big a change must be to count (default: as shown)")
    ab.add_argument("--format", default="table", help="table (default) or md (Markdown on stdout, e.g. for a CI "
                                                      "job summary)")
    ab.add_argument("--out", type=Path, default=None, help="results folder (default: results/ab-<run id>)")


def _report(sub: argparse._SubParsersAction[Parser]) -> None:
    rep = sub.add_parser("report", help="re-render the comparison tables from saved records")
    rep.add_argument("paths", nargs="*", type=Path, metavar="RESULTS",
                     help="records files or run folders (with --history: history files; default results/history)")
    rep.add_argument("--history", action="store_true",
                     help="the trend per cell over runs and commits (files written by bench run --history)")
    rep.add_argument("--output", type=Path, default=None, metavar="PATH",
                     help="write the report here (Markdown unless --format says otherwise); with several "
                          "formats PATH's suffix is replaced by each format's: report.md, report.html, ...")
    rep.add_argument("--format", default=None, metavar="md,html,csv,parquet",
                     help="comma list of report formats to write to --output (default: md)")


def _gate(sub: argparse._SubParsersAction[Parser]) -> None:
    cmp = sub.add_parser("compare", help="baseline vs current records: which cells got worse (exit 1 if any)")
    cmp.add_argument("baseline", metavar="BASELINE",
                     help="records file, run folder, or the NAME of a saved baseline (bench baseline list)")
    cmp.add_argument("current", type=Path, metavar="CURRENT", help="records file or run folder")
    cmp.add_argument("--threshold", default=None, metavar="time=10%,memory=10%,accuracy=0.5pp,latency=25%",
                     help="how big a change must be to count (default: time=10%%,memory=10%%,accuracy=0.5pp,"
                          "latency=25%%,throughput=25%%,size=5%%)")
    cmp.add_argument("--format", default="table", help="table (default) or md (Markdown, e.g. for a CI summary)")
    cmp.add_argument("--baselines", type=Path, default=Path("results/baselines"), metavar="DIR",
                     help="where baseline NAMEs are looked up (default: results/baselines)")
    base = sub.add_parser("baseline", help="save records as a named baseline for compare, or list the saved ones")
    bsub = base.add_subparsers(dest="action", required=True, parser_class=Parser)
    bsave = bsub.add_parser("save", help="store RESULTS as baseline NAME under DIR/<machine fingerprint>/NAME")
    bsave.add_argument("name", metavar="NAME", help="e.g. smoke-cpu (letters, digits, . _ -)")
    bsave.add_argument("paths", nargs="+", type=Path, metavar="RESULTS", help="records files or run folders")
    bsave.add_argument("--force", action="store_true", help="replace this machine's baseline of that name")
    blist = bsub.add_parser("list", help="the saved baselines and the machines they were measured on")
    for p in (bsave, blist):
        p.add_argument("--dir", type=Path, default=Path("results/baselines"), help="default: results/baselines")


def _history(sub: argparse._SubParsersAction[Parser]) -> None:
    hist = sub.add_parser("history", help="history for dashboards: each cell's latest run as benchmark-action JSON")
    hsub = hist.add_subparsers(dest="action", required=True, parser_class=Parser)
    exp = hsub.add_parser("export", help="write each cell's latest run as github-action-benchmark or Bencher BMF JSON")
    exp.add_argument("paths", nargs="*", type=Path, metavar="RESULTS",
                     help="history files, records files or run folders (default: results/history)")
    exp.add_argument("--format", required=True, metavar="github-action-benchmark|bmf",
                     help="github-action-benchmark (customSmallerIsBetter) or bmf (Bencher Metric Format)")
    exp.add_argument("--output", type=Path, default=None, metavar="PATH", help="write here (default: stdout)")


def build_parser() -> Parser:
    parser = Parser(prog="bench", description="Compare TensorFlow/Keras, PyTorch and JAX/Flax on one fair task spec.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    _run(sub)
    _ab(sub)
    ver = sub.add_parser("verify", help="check that every framework gives the same logits from the same weights")
    _common(ver, devices=False)
    ver.add_argument("--out", type=Path, default=None, help="where logits and logs go (default: a temporary folder)")
    sub.add_parser("list", help="tasks, profiles, datasets, frameworks (installed?) and devices")
    _report(sub)
    _gate(sub)
    _history(sub)
    return parser

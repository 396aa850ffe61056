"""The SLURM options of a run: bench's defaults for every job (exclusive node, time limit, CPUs) and the
user's --slurm-opt over them, each checked against submitit and this cluster's sbatch before any job."""
from __future__ import annotations

import difflib
import math
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import submitit

from bench.errors import UsageError
from bench.runner.config import RunConfig

SLURM_DIR = "slurm"  # in the run folder: a subfolder per invocation (job ids start again on a new cluster)
MARGIN_MIN = 5  # SLURM's time limit is --timeout plus this: the cell's own timeout fires first
# submitit asks for SIGUSR2 before the time limit (to checkpoint and requeue): it would kill the worker and end
# the job FAILED early. In its place, a signal that only the batch shell gets, and ignores.
NO_WARNING_SIGNAL = "B:URG@60"


def sbatch_options() -> set[str]:
    """The long options this cluster's sbatch knows (its --help), with '-' as '_' like --slurm-opt keys."""
    text = subprocess.run(["sbatch", "--help"], capture_output=True, text=True, timeout=60).stdout
    return {m.replace("-", "_") for m in re.findall(r"--([a-z][a-z0-9-]*)", text)}


def _value(text: str) -> Any:
    """A --slurm-opt value as submitit wants it: true/false as booleans, whole numbers as ints."""
    if text.lower() in ("true", "yes", "false", "no"):
        return text.lower() in ("true", "yes")
    return int(text) if text.isdigit() else text


def user_options(cfg: RunConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """--slurm-opt as (submitit's parameters, other sbatch options); a key neither knows is one clear error."""
    known = submitit.SlurmExecutor._valid_parameters() - {"additional_parameters", "map_count"}
    params: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, text in cfg.slurm_options:
        if key in ("setup", "teardown"):  # shell lines around the job's command: one per --slurm-opt
            params.setdefault(key, []).append(text)
        elif key in known:
            params[key] = shlex.split(text) if key == "srun_args" else _value(text)
        elif key in (sbatch := sbatch_options()):
            extra[key] = _value(text)
        else:
            close = difflib.get_close_matches(key, known | sbatch, n=1)
            hint = f"did you mean {close[0]}?" if close else "see `sbatch --help` for the options it takes"
            raise UsageError(f"--slurm-opt {key}: neither submitit nor this cluster's sbatch knows that option; {hint}")
    return params, extra


def parameters(cfg: RunConfig) -> dict[str, Any]:
    """Every job's submitit parameters: bench's defaults, with --slurm-opt over them."""
    user, extra = user_options(cfg)
    params: dict[str, Any] = {
        "cpus_per_task": cfg.threads, "time": math.ceil(cfg.timeout_s / 60) + MARGIN_MIN,
        "exclusive": True,  # nothing else on the node while a cell is timed
        "use_srun": False,  # the batch step has every CPU of the job; a 22.05 srun step would get one
        **user, "additional_parameters": {"signal": NO_WARNING_SIGNAL, "no_requeue": True, **extra}}
    if params["exclusive"] is True and not {"mem", "mem_per_cpu", "mem_per_gpu"} & set(user):
        params["mem"] = "0"  # the node's whole memory too, not the partition's default share
    params["exclusive"] = params["exclusive"] or None  # exclusive=false: no --exclusive at all
    params["additional_parameters"] = {k: v for k, v in params["additional_parameters"].items() if v is not False}
    return params


def executor(cfg: RunConfig, folder: Path) -> submitit.SlurmExecutor:
    """A submitit executor for this run, every option checked: one clear error before any job is submitted."""
    for tool in ("sbatch", "squeue", "scancel", "srun"):
        if shutil.which(tool) is None:
            raise UsageError(f"--executor slurm: {tool} not found; run bench on a SLURM login node (docs/cluster.md)")
    ex = submitit.SlurmExecutor(folder=folder)
    try:
        ex.update_parameters(**parameters(cfg))
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--slurm-opt: submitit refuses the options: {str(exc).splitlines()[0]}") from None
    return ex


def check(cfg: RunConfig) -> None:
    """Validate the SLURM options now (the CLI calls this before it writes anything)."""
    executor(cfg, cfg.out.resolve() / SLURM_DIR)

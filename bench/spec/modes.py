"""Execution modes (eager/compiled) and precisions (fp32/bf16): names, defaults, labels; no framework import."""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from bench.spec.sweep import BASELINE

MODES = ("default", "eager", "compiled")  # what --mode accepts; records hold only eager or compiled
PRECISIONS = ("fp32", "bf16")

# What `--mode default` runs. CPU: each framework's behaviour out of the box (Keras' jit_compile="auto" is
# eager there), what every record made before --mode ran. GPU: all three compiled (Keras and JAX are XLA by
# default there, torch is torch.compile'd to match), so the GPU headline compares like with like; eager
# torch on GPU is --mode eager.
_DEFAULT = {"tf": {"cpu": "eager", "gpu": "compiled"}, "torch": {"cpu": "eager", "gpu": "compiled"},
            "jax": {"cpu": "compiled", "gpu": "compiled"}}

JAX_EAGER = "JAX has no eager training mode here: not applicable"

# GPU autotuning, one policy for all three: on. TF and XLA autotune unless told not to; torch's
# cudnn.benchmark is off by default and is switched on. Shapes are fixed (full batches, padded
# evaluation batches), so each framework tunes once per shape inside its first steps, which the
# records keep apart (first_step_s / first_epoch_s) from the steady state. CPUs have no autotuning.
XLA_AUTOTUNE_FLAG = "--xla_gpu_autotune_level=4"
GPU_AUTOTUNE_ENV = {"TF_CUDNN_USE_AUTOTUNE": "1"}


def resolve_mode(framework: str, device: str, mode: str) -> str:
    """'default' -> the framework's own mode on that device; 'eager'/'compiled' stay as they are."""
    if mode == "default":
        return _DEFAULT.get(framework, {}).get(device, "eager")
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
    return mode


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    return precision


def autotune_env(env: dict[str, str]) -> dict[str, str]:
    """The GPU autotuning variables of a worker's environment (XLA_FLAGS keeps the user's other flags)."""
    flags = [f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_gpu_autotune_level")]
    return {**GPU_AUTOTUNE_ENV, "XLA_FLAGS": " ".join([*flags, XLA_AUTOTUNE_FLAG])}


def variant(rec: Any) -> str:
    """'compiled, bf16': the part of a row label that tells modes and precisions apart."""
    return f"{rec.mode}, {rec.precision}"


def framework_labels(records: Iterable[Any]) -> list[str]:
    """Each record's framework, as 'torch (compiled, bf16)' on GPU and where that framework ran one task
    on one device in more than one mode or precision (otherwise, on CPU, the plain name: the run line says
    what ran)."""
    recs = list(records)
    seen: dict[tuple, set[str]] = defaultdict(set)
    for r in recs:
        seen[(r.task, r.framework, r.device)].add(variant(r))
    mixed = {fw for (_, fw, _), v in seen.items() if len(v) > 1}
    # a classical baseline is named by its estimator: 'sklearn svm'; a GPU row always names its mode
    names = [f"{BASELINE} {r.mode}" if r.framework == BASELINE else f"{r.framework} ({variant(r)})"
             if r.framework in mixed or r.device == "gpu" else r.framework for r in recs]
    names = [n + (f" ×{r.devices}" if getattr(r, "devices", 1) > 1 else "") for n, r in zip(names, recs)]
    return [f"{n} · {r.side}" if getattr(r, "side", None) else n for n, r in zip(names, recs)]  # bench ab's sides


def summary(records: Iterable[Any]) -> str:
    """One line for a report: which mode and precision each framework ran, GPU autotuning, how batches were drawn."""
    per: dict[str, set[str]] = defaultdict(set)
    ran: set[tuple[str, str]] = set()
    tune: set[str] = set()
    inputs: set[str] = set()  # how batches were drawn (bench/harness/loop.py), the same for every framework
    recs = list(records)
    for r in (r for r in recs if r.framework != BASELINE):  # baselines have no mode: the sweep section names them
        per[r.framework].add(variant(r))
        if r.status == "ok":
            ran.add((r.framework, variant(r)))
        if r.device != "cpu" and (r.settings or {}).get("autotune"):
            tune.add(f"{r.framework}: {r.settings['autotune']}")
        if (r.settings or {}).get("input"):
            inputs.add(f"{r.device}: {r.settings['input']}")
    modes = "; ".join(f"{fw} " + " | ".join(v + ("" if (fw, v) in ran else " (did not run)") for v in sorted(vs))
                      for fw, vs in per.items())
    line = (f"- Modes and precision: {modes} (fp32 means TF32 off on GPU; bf16 is mixed precision with fp32 "
            "weights, logits and loss)")
    line += f"; GPU autotuning on: {'; '.join(sorted(tune))}" if tune else ""
    return line + (f"; input: {'; '.join(sorted(inputs))}" if inputs else "")


def label(framework: str, device: str, mode: str | None, precision: str, devices: int = 1) -> str:
    """'torch (compiled, bf16)', always on GPU; on CPU the plain name for the framework's default mode in
    fp32; 'sklearn svm'; ' ×2' after it when the cell trained data-parallel on 2 devices."""
    if framework == BASELINE:
        return f"{framework} {mode}"
    width = f" ×{devices}" if devices > 1 else ""
    if mode in (None, "default"):
        mode = resolve_mode(framework, device, "default")
    if device == "cpu" and mode == resolve_mode(framework, device, "default") and precision == "fp32":
        return framework + width
    return f"{framework} ({mode}, {precision}){width}"


def ordered(labels: Iterable[str], frameworks: tuple[str, ...]) -> list[str]:
    """Row labels in the frameworks' canonical order, a framework's variants together."""
    def rank(lab: str) -> tuple[int, str]:
        name = lab.split(" (")[0].split(" · ")[0].split(" ×")[0]
        return (frameworks.index(name) if name in frameworks else len(frameworks), lab)
    return sorted(labels, key=rank)

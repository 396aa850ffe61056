"""The GPU acceptance run (issue #15, docs/gpu.md): on one GPU, in under 8 minutes, for every installed framework —
CPU vs GPU smoke and quick MNIST cells, a smoke cats_vs_dogs cell, a compiled-mode cell, `bench verify`, GPU logits
against CPU logits, every tensor of a step on the GPU, plausible device-memory fields — then summary.md under --out.

    python benchmarks/gpu_acceptance.py --out DIR [--data-root DIR] [--frameworks torch,jax]

Exit 0: every check passed; 1: a check failed; 2: no GPU on this machine (one line on stderr).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: bench is imported from this checkout

PACKAGES = {"tf": ("tensorflow", "keras"), "torch": ("torch",), "jax": ("jax", "flax", "optax")}
from benchmarks.gpu_probe import PROBE_PREFIX  # noqa: E402 - after the path insert above

BUDGET_MIN = 8  # issue #15; over it is a NOTE, not a FAIL: a slow first compile is no fault of the GPU
# name -> `bench run` arguments; --no-inference where prediction is not what the step proves (saves ~40 %).
RUNS = {
    "smoke": ["--task", "mnist_mlp,mnist_cnn", "--profile", "smoke", "--device", "cpu,gpu"],
    "quick": ["--task", "mnist_mlp,mnist_cnn", "--profile", "quick", "--device", "cpu,gpu", "--no-inference"],
    "photos": ["--task", "cats_vs_dogs", "--profile", "smoke", "--device", "cpu,gpu", "--no-inference"],
    "compiled": ["--task", "mnist_cnn", "--profile", "smoke", "--device", "gpu", "--mode", "compiled",
                 "--no-inference"],
}
# Words a settings["precision"] of an fp32 GPU build uses for "no TF32" (torch/TF: "TF32 off"; JAX: "highest").
FP32_PINS = ("TF32 off", "highest", "no TF32")


def _quiet(cmd: list[str], timeout: float = 120) -> str:
    """A command's stdout, or "" when it is missing, fails or hangs: detection must never crash."""
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def detect_gpu() -> tuple[str | None, int | None, str]:
    """(GPU name, memory in bytes, how it was looked for): nvidia-smi first, then torch and JAX in a child process
    (their import noise stays out of this one's output)."""
    smi = shutil.which("nvidia-smi")
    if smi:
        rows = _quiet([smi, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"]).splitlines()
        if rows and "," in rows[0]:
            name, mib = (s.strip() for s in rows[0].rsplit(",", 1))
            return name, int(float(mib)) * 2**20 if mib.replace(".", "").isdigit() else None, "nvidia-smi"
    asks = {"torch": "import torch; c = torch.cuda; print(c.get_device_name(0), c.mem_get_info()[1], sep='|') "
                     "if c.is_available() else None",
            "jax": "import jax; d = jax.devices('gpu')[0]; print(d.device_kind, "
                   "(d.memory_stats() or {}).get('bytes_limit', ''), sep='|')"}
    for fw, code in asks.items():
        if installed(fw):
            line = (_quiet([sys.executable, "-c", code]).strip().splitlines() or [""])[-1]
            if "|" in line:
                name, size = line.split("|", 1)
                return name, int(size) if size.isdigit() else None, fw
    return None, None, "nvidia-smi lists none" if smi else "no nvidia-smi, and neither torch nor JAX sees one"


def installed(fw: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in PACKAGES[fw])


def child_env() -> dict[str, str]:
    # No network on a GPU box: missing data must be one clear error, never a download that hangs.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            "BENCH_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def step(name: str, cmd: list[str], out: Path, timeout: float) -> tuple[int, str]:
    """Run one command, its output into out/<name>.log; (exit code, output)."""
    t0 = time.monotonic()
    try:
        res = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)
        rc, text = res.returncode, res.stdout + res.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = 124, f"{exc.stdout or ''}{exc.stderr or ''}\ntimed out after {timeout:.0f} s"
    (out / f"{name}.log").write_text(str(text))
    print(f"gpu_acceptance: {name}: exit {rc} in {time.monotonic() - t0:.0f} s", flush=True)
    return rc, str(text)


def bench_runs(out: Path, frameworks: list[str], data_root: Path | None) -> dict[str, int]:
    common = ["--framework", ",".join(frameworks), "--timeout", "300"]
    common += ["--data-root", str(data_root)] if data_root else []
    return {name: step(name, [sys.executable, "-m", "bench", "run", *args, *common, "--out", str(out / name)],
                       out, 600)[0] for name, args in RUNS.items()}


def bench_verify(out: Path, frameworks: list[str], data_root: Path | None) -> tuple[bool | None, str]:
    """`bench verify` over the frameworks (GPU as well where this version of it takes --device)."""
    if len(frameworks) < 2:
        return None, "bench verify: needs two frameworks, only " + ",".join(frameworks)
    cmd = [sys.executable, "-m", "bench", "verify", "--framework", ",".join(frameworks), "--out", str(out / "verify")]
    helptext = _quiet([sys.executable, "-m", "bench", "verify", "--help"])
    cmd += ["--device", "cpu,gpu"] if "--device" in helptext else []
    cmd += ["--data-root", str(data_root)] if data_root else []
    rc, text = step("verify", cmd, out, 600)
    last = next((ln for ln in reversed(text.splitlines()) if ln.startswith("verify:")), f"exit {rc}")
    return rc == 0, f"bench verify{' --device cpu,gpu' if '--device' in cmd else ' (CPU)'}: {last}"


def probes(out: Path, frameworks: list[str], data_root: Path | None) -> dict[str, dict]:
    """Per framework, in its own process: placement after a train step and GPU vs CPU logits (see probe())."""
    found = {}
    for fw in frameworks:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_probe.py"), fw]
        cmd += ["--data-root", str(data_root)] if data_root else []
        rc, text = step(f"probe_{fw}", cmd, out, 600)
        line = next((ln for ln in reversed(text.splitlines()) if ln.startswith(PROBE_PREFIX)), None)
        found[fw] = json.loads(line[len(PROBE_PREFIX):]) if line else {"error": f"exit {rc}: {text[-300:]}"}
    return found


# --- checks and the summary page ---------------------------------------------------------------------------------
Check = tuple[bool | None, str]  # (True pass | False fail | None not checked, the line's text)


def load_records(out: Path) -> dict[str, list[dict]]:
    """Run name -> its records (an empty list where the run wrote none)."""
    found = {}
    for name in RUNS:
        path = out / name / "records.jsonl"
        found[name] = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    return found


def cell(run: str, r: dict) -> str:
    return f"{run}:{r['task']}/{r['framework']}/{r['device']}"


def _verdict(what: str, bad: list[str], n: int, unit: str = "cells") -> Check:
    if not n:
        return False, f"{what}: nothing to check"
    return (not bad, f"{what}: {n} {unit}" if not bad else f"{what}: " + "; ".join(bad[:6]) + " …" * (len(bad) > 6))


def record_checks(records: dict[str, list[dict]], gpu: dict) -> list[Check]:
    """status, device name, TF32 pins and compiled mode over every record; the memory fields over the GPU ones."""
    every = [(run, r) for run, rs in records.items() for r in rs]
    on_gpu = [(run, r) for run, r in every if r["device"] == "gpu"]
    word = gpu["name"].split()[-1].lower()  # "NVIDIA H200" -> "h200": each framework words the name its own way
    out = [_verdict("every cell ran (status ok)", [f"{cell(*x)} {x[1]['status']}: {(x[1].get('error') or '')[:120]}"
                                                  for x in every if x[1]["status"] != "ok"], len(every)),
           _verdict("GPU records name the GPU", [f"{cell(*x)} says {x[1].get('device_name')!r}" for x in on_gpu
                                                 if word not in str(x[1].get("device_name")).lower()], len(on_gpu)),
           _verdict("TF32 off (settings precision)", [cell(*x) for x in on_gpu if x[1].get("precision") == "fp32"
                    and not any(p in x[1].get("settings", {}).get("precision", "") for p in FP32_PINS)], len(on_gpu))]
    checked = [x for x in on_gpu if "tf32_check" in x[1].get("settings", {})]
    out.append(_verdict("TF32 off (runtime tf32_check)", [f"{cell(*x)}: {x[1]['settings']['tf32_check']}"
               for x in checked if not x[1]["settings"]["tf32_check"].startswith("fp32")], len(checked))
               if checked else (None, "TF32 off (runtime tf32_check): no record has settings['tf32_check']"))
    compiled = [x for x in on_gpu if x[0] == "compiled"]
    out.append(_verdict("compiled mode runs on the GPU", [cell(*x) for x in compiled if x[1]["status"] != "ok"
                                                          or x[1].get("mode") != "compiled"], len(compiled)))
    return out + memory_checks([x for x in on_gpu if x[1]["status"] == "ok"], gpu.get("bytes"))


def memory_checks(on_gpu: list[tuple[str, dict]], total: int | None) -> list[Check]:
    """Each device-memory field: above 0 and below the GPU's memory; absent fields are noted, not failed."""
    limit = total or float("inf")
    out = []
    fields = ["peak_device_bytes", "train_peak_device_bytes", "eval_peak_device_bytes", "device_reserved_bytes"]
    fields += ["nvml_peak_bytes"] if importlib.util.find_spec("pynvml") else []
    for f in fields:
        rows = [x for x in on_gpu if x[1].get(f) is not None and (f != "device_reserved_bytes" or
                                                                  x[1]["framework"] == "torch")]
        if not rows:
            out.append((None if f != "peak_device_bytes" else False, f"{f}: set in no GPU record, not checked"))
            continue
        bad = [f"{cell(*x)} {f}={x[1][f]}" for x in rows if not 0 < x[1][f] < limit]
        if f == "device_reserved_bytes":  # torch's caching allocator holds at least what it handed out
            bad += [f"{cell(*x)} reserved {x[1][f]} < train peak {x[1].get('train_peak_device_bytes')}"
                    for x in rows if x[1][f] < (x[1].get("train_peak_device_bytes") or 0)]
        out.append(_verdict(f"{f} in (0, {limit / 2**30:.0f} GiB)", bad, len(rows)))
    return out


def probe_checks(found: dict[str, dict]) -> list[Check]:
    out = []
    for fw, res in found.items():
        if "error" in res:
            out.append((False, f"{fw} probe failed: {res['error'].strip().splitlines()[-1] if res['error'] else ''}"))
            continue
        far = [f"{t} {d:.1e} > {tol:.0e}" for t, (d, tol) in res["logits"].items() if d > tol]
        worst = max(d for d, _ in res["logits"].values())
        out.append((not far, f"{fw}: GPU logits within tolerance of CPU (max {worst:.1e})" if not far
                    else f"{fw}: GPU logits differ from CPU: " + "; ".join(far)))
        off = {t: names for t, names in res["off_gpu"].items() if names}
        out.append((not off, f"{fw}: every tensor of a train step on the GPU" if not off
                    else f"{fw}: tensors off the GPU: " + "; ".join(f"{t}: {n[:3]}" for t, n in off.items())))
    return out


def _ms(v: float | None) -> str:
    return f"{v * 1e3:.2f}" if v else "–"


def cell_table(records: dict[str, list[dict]]) -> list[str]:
    """One row per (run, task, framework): CPU vs GPU steady step and samples/s, speedup, MFU on the datasheet peak."""
    rows = ["| run | task | framework | CPU step ms | GPU step ms | CPU samples/s | GPU samples/s | speedup | "
            "GPU MFU (datasheet) |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for run, rs in records.items():
        by = {(r["task"], r["framework"], r["device"]): r for r in rs if r["status"] == "ok"}
        for task, fw in sorted({(t, f) for t, f, _ in by}):
            c, g = by.get((task, fw, "cpu"), {}), by.get((task, fw, "gpu"), {})
            speed = (f"{c['steady_step_s'] / g['steady_step_s']:.1f}×" if c.get("steady_step_s")
                     and g.get("steady_step_s") else "–")
            mfu = (f"{g['mfu_nominal']:.2%} of {g['nominal_peak_flops'] / 1e12:.0f} TFLOP/s" if g.get("mfu_nominal")
                   and g.get("nominal_peak_flops") else "–")
            sps = [f"{r['samples_per_s']:,.0f}" if r.get("samples_per_s") else "–" for r in (c, g)]
            rows.append(f"| {run} | {task} | {fw} | {_ms(c.get('steady_step_s'))} | {_ms(g.get('steady_step_s'))} | "
                        f"{sps[0]} | {sps[1]} | {speed} | {mfu} |")
    return rows


def write_summary(out: Path, gpu: dict, records: dict[str, list[dict]], checks: list[Check]) -> str:
    mark = {True: "PASS", False: "FAIL", None: "NOTE"}
    lines = [f"{mark[ok]} {text}" for ok, text in checks]
    page = [f"# GPU acceptance: {gpu['name']}", "",
            f"{gpu['date']} · {gpu.get('bytes', 0) / 2**30:.0f} GiB (found by {gpu['found_by']}) · frameworks "
            f"{', '.join(gpu['frameworks'])} · {gpu['minutes']:.1f} min · runs' exit codes {gpu['run_exit']}", "",
            "Speedup = CPU steady step / GPU steady step; MFU = achieved FLOP/s over the GPU datasheet's dense peak "
            "for the precision. Each run's own report: `<run>/report.md`.", "", *cell_table(records), "",
            "## Checks", "", "```", *lines, "```", ""]
    (out / "summary.md").write_text("\n".join(page))
    return "\n".join(lines)


def evaluate(out: Path, gpu: dict, verify: Check, found: dict[str, dict]) -> int:
    """All checks -> summary.md and the check lines on stdout; 0 only when none failed."""
    records = load_records(out)
    ran = gpu.get("run_exit", {})  # a run that died before its first cell leaves no record to fail a check
    wrote = _verdict("every run wrote records", [f"{n} (exit {rc}, see {n}.log)" for n, rc in ran.items()
                                                 if not records.get(n)], len(ran), "runs")
    budget = (gpu["minutes"] <= BUDGET_MIN or None, f"took {gpu['minutes']:.1f} min (budget {BUDGET_MIN} min)")
    checks = [verify, wrote, *record_checks(records, gpu), *probe_checks(found), budget]
    print(write_summary(out, gpu, records, checks))
    print(f"gpu_acceptance: summary in {out / 'summary.md'}")
    return 1 if any(ok is False for ok, _ in checks) else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="gpu_acceptance", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, help="folder for the runs, logs and summary.md")
    p.add_argument("--data-root", type=Path, help="data root: mnist/ IDX files, cats_vs_dogs/, weights/")
    p.add_argument("--frameworks", default=None, help="comma list (default: those installed among tf,torch,jax)")
    args = p.parse_args(argv)
    if args.out is None:
        p.error("--out is required")
    name, total, how = detect_gpu()
    if name is None:
        print(f"gpu_acceptance: no GPU on this machine ({how}): nothing to check", file=sys.stderr)
        return 2
    frameworks = args.frameworks.split(",") if args.frameworks else [fw for fw in PACKAGES if installed(fw)]
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    rcs = bench_runs(args.out, frameworks, args.data_root)
    with ThreadPoolExecutor(1) as pool:  # verify (CPU workers) beside the probes (GPU): ~1 min of the budget
        later = pool.submit(bench_verify, args.out, frameworks, args.data_root)
        found = probes(args.out, frameworks, args.data_root)
        verify = later.result()
    gpu = {"name": name, "bytes": total, "found_by": how, "frameworks": frameworks, "run_exit": rcs,
           "minutes": (time.monotonic() - t0) / 60, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return evaluate(args.out, gpu, verify, found)


if __name__ == "__main__":
    sys.exit(main())

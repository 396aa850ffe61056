"""Comparison tables from records: rows task x framework, columns per device (rich and Markdown)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

from bench import modes
from bench.records import Record
from bench.spec import FRAMEWORKS, TASKS

Cell = dict[str, Any]


def _fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def _fmt_s(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def _fmt_bytes(v: float | None) -> str:
    return "–" if v is None else f"{v / 2**20:,.0f} MiB"


def _fmt_gflops(v: float | None) -> str:
    return "–" if v is None else f"{v / 1e9:,.1f}"


def _fmt_mfu(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


METRICS = ("test_accuracy", "train_time_s", "steady_epoch_s", "first_epoch_s", "samples_per_s",
           "peak_host_rss_bytes", "peak_device_bytes", "eval_time_s", "achieved_flops", "mfu", "mfu_nominal",
           "first_step_s", "steady_step_s", "steady_step_iqr_s", "time_to_accuracy_s", "train_added_rss_bytes")
KEY = ["task", "framework", "device"]


SPREAD = ("train_time_s", "samples_per_s")  # shown with a 95 % CI and CV when a cell has repeats


def spread(values: list[float]) -> tuple[float, float, float] | None:
    """(low, high, CV) of n >= 2 repeats: Student-t 95 % interval of the mean, CV = sd / mean."""
    import statistics

    from scipy.stats import t

    if len(values) < 2:
        return None
    mean, sd = statistics.fmean(values), statistics.stdev(values)
    half = float(t.ppf(0.975, len(values) - 1)) * sd / len(values) ** 0.5
    return mean - half, mean + half, (sd / mean if mean else float("nan"))


def aggregate(records: list[Record]) -> dict[tuple[str, str, str], Cell]:
    """One entry per (task, framework, device): medians over its ok records (seeds, repeats)."""
    from bench.records import frame

    df = frame(records)
    if len(df):  # 'torch (compiled, bf16)' where a framework ran in several modes/precisions: rows stay apart
        df["framework"] = modes.framework_labels(records)
    ok = df[df["status"] == "ok"]
    medians = ok.groupby(KEY)[list(METRICS)].median() if len(ok) else None
    out: dict[tuple[str, str, str], Cell] = {}
    for key, group in df.groupby(KEY, sort=False):
        n_ok = int((group["status"] == "ok").sum())
        last = group.iloc[-1]
        cell: Cell = {"status": "ok" if n_ok else last["status"], "n": n_ok, "of": len(group),
                      "error": None if n_ok else last["error"]}
        for name in METRICS:
            value = medians.loc[key, name] if n_ok and medians is not None else None
            cell[name] = None if value is None or value != value else float(value)  # NaN -> None
        oks = group[group["status"] == "ok"]
        for name in SPREAD:
            cell[name + "_spread"] = spread([float(v) for v in oks[name] if v is not None and v == v])
        cell.update(_tta_and_windows(oks))
        out[key] = cell
    return out


def _tta_and_windows(oks: Any) -> Cell:
    """How many ok repeats reached the TTA target (the median time is over those), and whether a
    repeat had too few steps for one steady-state window."""
    targets = [float(v) for v in oks["tta_target"] if v is not None and v == v]
    return {"tta_target": targets[0] if targets else None,
            "tta_reached": int(oks["time_to_accuracy_s"].notna().sum()),
            "no_window": bool((oks["step_windows"] == 0).any())}


def _fmt_step(c: Cell) -> str:
    """Steady step in ms with its IQR; 'too few steps' when no window of M steps fit after warm-up."""
    if c["steady_step_s"] is None:
        return "too few steps" if c.get("no_window") else "–"
    iqr = c["steady_step_iqr_s"]
    return f"{1e3 * c['steady_step_s']:.2f}" + ("" if iqr is None else f" ± {1e3 * iqr:.2f}")


def _fmt_tta(c: Cell) -> str:
    """Median time to accuracy over the repeats that reached it; 'not reached' is a result, not an error."""
    if c.get("tta_target") is None or not c["n"]:
        return "–"
    if not c["tta_reached"]:
        return "not reached"
    t = _fmt_s(c["time_to_accuracy_s"])
    return t if c["tta_reached"] == c["n"] else f"{t} ({c['tta_reached']}/{c['n']} reached)"


def _fmt_rate(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _with_spread(c: Cell, name: str, fmt: Callable[[float | None], str]) -> str:
    """'median [CI low–high] CV x %' with repeats, the median alone without."""
    sp = c.get(name + "_spread")
    if c[name] is None or sp is None:
        return fmt(c[name])
    return f"{fmt(c[name])} [{fmt(sp[0])}–{fmt(sp[1])}] CV {100 * sp[2]:.1f} %"


def _order(names: set[str], preferred: tuple[str, ...]) -> list[str]:
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


Column = tuple[str, Callable[[Cell], str], bool]  # header, formatter, shown in the compact table


def _device_columns(device: str, compact: bool) -> list[tuple[str, Callable[[Cell], str]]]:
    d = device.upper()
    cols: list[Column] = [
        (f"{d} status", lambda c: c["status"] + (f" ({c['n']}/{c['of']})" if c["of"] > 1 else ""), True),
        (f"{d} accuracy", lambda c: _fmt_pct(c["test_accuracy"]), True),
        (f"{d} train s", lambda c: _with_spread(c, "train_time_s", _fmt_s), True),
        (f"{d} first epoch s", lambda c: _fmt_s(c["first_epoch_s"]), False),
        (f"{d} steady epoch s", lambda c: _fmt_s(c["steady_epoch_s"]), True),
        (f"{d} first step s", lambda c: _fmt_s(c["first_step_s"]), False),
        (f"{d} steady step ms ± IQR", _fmt_step, True),
        (f"{d} time to acc s", _fmt_tta, False),
        (f"{d} samples/s", lambda c: _with_spread(c, "samples_per_s", _fmt_rate), False),
        (f"{d} GFLOP/s", lambda c: _fmt_gflops(c["achieved_flops"]), False),
        (f"{d} MFU", lambda c: _fmt_mfu(c["mfu"]), True),
        (f"{d} peak RSS", lambda c: _fmt_bytes(c["peak_host_rss_bytes"]), device == "cpu"),
        (f"{d} train-added RSS", lambda c: _fmt_bytes(c["train_added_rss_bytes"]), False),
    ]
    if device != "cpu":
        cols.append((f"{d} peak device mem", lambda c: _fmt_bytes(c["peak_device_bytes"]), True))
        cols.append((f"{d} MFU nominal", lambda c: _fmt_mfu(c["mfu_nominal"]), False))
    return [(name, fn) for name, fn, short in cols if short or not compact]


def table_rows(records: list[Record], compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (compact: the terminal's narrower column set)."""
    agg = aggregate(records)
    tasks = _order({k[0] for k in agg}, tuple(TASKS))
    fws = modes.ordered({k[1] for k in agg}, FRAMEWORKS)
    devices = _order({k[2] for k in agg}, ("cpu", "gpu"))
    header = ["task", "framework"]
    for d in devices:
        header += [name for name, _ in _device_columns(d, compact)]
    speedup = "cpu" in devices and "gpu" in devices
    if speedup:
        header.append("GPU speedup")
    rows = []
    for t in tasks:
        for f in fws:
            if not any((t, f, d) in agg for d in devices):
                continue
            row = [t, f]
            for d in devices:
                c = agg.get((t, f, d))
                row += [fn(c) if c else "–" for _, fn in _device_columns(d, compact)]
            if speedup:
                cpu, gpu = agg.get((t, f, "cpu")), agg.get((t, f, "gpu"))
                ok = cpu and gpu and cpu["train_time_s"] and gpu["train_time_s"]
                row.append(f"{cpu['train_time_s'] / gpu['train_time_s']:.1f}×" if ok else "–")
            rows.append(row)
    return header, rows


def rich_table(records: list[Record], title: str = "bench") -> Any:
    from rich.table import Table

    header, rows = table_rows(records, compact=True)
    table = Table(title=title, header_style="bold")
    for i, h in enumerate(header):
        table.add_column(h, justify="left" if i < 2 else "right", no_wrap=i < 2)
    for row in rows:
        table.add_row(*[("[red]" + v + "[/red]") if v.startswith("failed") else v for v in row])
    return table


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    esc = [[v.replace("|", "\\|") for v in r] for r in [header, *rows]]
    lines = ["| " + " | ".join(esc[0]) + " |", "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)


def _environment(records: list[Record]) -> list[str]:
    lines = []
    envs = {(r.env.get("cpu"), r.env.get("cpus"), tuple(r.env.get("gpus") or ())) for r in records if r.env}
    for cpu, cpus, gpus in sorted(envs, key=str):
        lines.append(f"- Machine: {cpu} ({cpus} CPUs available)" + (f"; GPU: {', '.join(gpus)}" if gpus else "; no GPU"))
    versions: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for k, v in r.versions.items():
            if v:
                versions[k].add(str(v))
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(versions.items())))
    runs = sorted({(r.run_id, r.profile, r.dataset, r.epochs, r.threads, (r.env or {}).get("commit")) for r in records}, key=str)
    for run_id, profile, dataset, epochs, threads, commit in runs:
        lines.append(f"- Run {run_id}: profile {profile}, dataset {dataset}, {epochs} epochs, "
                     f"{threads} CPU threads per worker, commit {commit or 'unknown'}")
    if records:
        lines.append(modes.summary(records))
    return lines


NOTES = """\
How to read this: *train s* is the sum of all epochs' training steps (evaluation excluded), timed
by the harness with a device sync before each clock read; *first epoch* includes compilation and
warm-up, *steady epoch* is the median of epochs 2..n; *samples/s* is over steady epochs; *peak RSS*
is the worker process's peak resident memory (imports, data and framework included); *peak device
mem* is the framework's own allocator peak. *GFLOP/s* is the task's analytic training FLOPs per
sample (2 per multiply-add of its conv and dense layers, training = 3 x forward, frozen layers less:
bench/flops.py) times samples/s; *MFU* divides it by the peak of fp32 square matmuls measured in the
same framework on the same machine and thread count (cached per machine, see the records' `peaks`),
so it says how near a framework gets to its own matmul speed (compare frameworks by GFLOP/s); on
GPU *MFU nominal* divides by the datasheet's dense fp32 peak. Every framework starts from the same
weights file, sees the same batches in the same order and uses the spec's optimizer rule in fp32
(TF32 off).

*first step s* is step 1 alone, synced right after it (compilation/tracing and first-use costs).
*steady step ms ± IQR*: after K warm-up steps the harness syncs once every M steps (the task's
`measurement` in the spec, listed above; per phase for transfer); each window of M steps is timed by
that one sync, a window never spans an epoch end (evaluation runs there), and the column shows the
median window / M ± the interquartile range of the windows' per-step times (no ± with one window;
*too few steps* when no full window fits after warm-up). *time to acc s* (MLPerf rule): one clock,
started after model build just before the first training batch and never paused (evaluation
included), stopped at the first end-of-epoch evaluation that reaches the task's target (test split
for MNIST, validation photos for cats_vs_dogs); *not reached* means no evaluation of the run did,
and with repeats the median is over those that reached it. *train-added RSS* is the peak resident
memory during training (the kernel's peak counter is reset after imports, data and model build)
minus the resident memory at that reset; *peak RSS* stays the whole process's."""


def phase_section(records: list[Record]) -> list[str]:
    """Transfer tasks: each phase's times, throughput and validation accuracy (one row per record)."""
    rows = []
    for r in records:
        for ph in r.phases if r.status == "ok" else []:
            # records come from files: keep only numbers (and the name as text), never crash on an edited one
            ph = {k: v for k, v in ph.items() if isinstance(v, (int, float)) and not isinstance(v, bool)} | \
                {"name": str(ph.get("name"))}
            ips = ph.get("samples_per_s")
            rows.append([r.task, r.framework, r.device, str(r.seed), ph["name"], f"{ph.get('trainable_params', 0):,}",
                         _fmt_s(ph.get("time_s")), _fmt_s(ph.get("first_epoch_s")), _fmt_s(ph.get("steady_epoch_s")),
                         _fmt_s(ph.get("first_step_s")), _fmt_step({"steady_step_s": ph.get("steady_step_s"),
                         "steady_step_iqr_s": ph.get("steady_step_iqr_s"), "no_window": ph.get("step_windows") == 0}),
                         "–" if ips is None else f"{ips:,.1f}", _fmt_mfu(ph.get("mfu")), _fmt_pct(ph.get("val_accuracy"))])
    if not rows:
        return []
    header = ["task", "framework", "device", "seed", "phase", "trainable", "train s", "first epoch s",
              "steady epoch s", "first step s", "steady step ms ± IQR", "images/s", "MFU", "val accuracy"]
    out = ["## Transfer-learning phases", "", markdown_table(header, rows), ""]
    skipped = sorted({s for r in records for s in r.data_skipped})
    if skipped:
        out += [f"Skipped unreadable input files ({len(skipped)}): " + "; ".join(skipped[:10]), ""]
    return out


def spec_mismatches(records: list[Record]) -> list[str]:
    """One warning per task whose records come from more than one version of its spec."""
    out = []
    for task in sorted({r.task for r in records}):
        hashes = sorted({r.spec_hash for r in records if r.task == task})
        if len(hashes) > 1:
            out.append(f"{task}: records from {len(hashes)} versions of the spec ({', '.join(hashes)}); "
                       "their numbers are not comparable — report them apart")
    return out


def markdown_report(records: list[Record], problems: list[str] | None = None) -> str:
    header, rows = table_rows(records)
    out = ["# bench report", "", *_environment(records), "", markdown_table(header, rows), ""]
    refs = sorted({(r.task, r.dataset) for r in records if r.task in TASKS})
    ref_lines = [f"{t} on {d}: {100 * TASKS[t].reference_accuracy[d]:.1f} %" for t, d in refs
                 if d in TASKS[t].reference_accuracy]
    if ref_lines:
        out += ["Reference accuracies (published Keras examples; for cats_vs_dogs the issue's target on "
                "validation photos), full standard profile: " + "; ".join(ref_lines) + ".", ""]
    targets = [f"{t} on {d}: {100 * TASKS[t].target_accuracy[d]:.1f} %" for t, d in refs
               if d in TASKS[t].target_accuracy]
    if targets:
        out += ["Time-to-accuracy targets: " + "; ".join(targets) + ".", ""]
    windows = [f"{t} K {m.warmup_steps}, M {m.window_steps}" for t in sorted({t for t, _ in refs})
               for m in [TASKS[t].measurement]]
    if windows:
        out += ["Steady-state step windows (K warm-up steps, then windows of M steps): " + "; ".join(windows) + ".", ""]
    out += phase_section(records)
    bad = [r for r in records if r.status != "ok"]
    if bad:
        out += ["## Cells that did not run", ""]
        out += [f"- {r.task}/{r.framework}/{r.device} (seed {r.seed}): **{r.status}** — "
                f"{(r.error or '').splitlines()[0] if r.error else 'no reason given'}" for r in bad]
        out.append("")
    if problems:
        out += ["## Problems with the records", "", *[f"- {p}" for p in problems], ""]
    out += [NOTES, ""]
    return "\n".join(out)

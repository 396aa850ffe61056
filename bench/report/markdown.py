"""The Markdown report: the comparison table, how it was measured, transfer phases, cells that did not run."""
from __future__ import annotations

from collections import defaultdict

from bench.records import Record, summarize
from bench.report import inference, optimizers, scaling, sweep, yardstick
from bench.report.tables import fmt_mfu, fmt_pct, fmt_s, fmt_step, markdown_table, table_rows
from bench.spec import TASKS, modes


def _environment(records: list[Record]) -> list[str]:
    lines = []
    envs = {(r.env.get("cpu"), r.env.get("cpus"), tuple(r.env.get("gpus") or ())) for r in records if r.env}
    for cpu, cpus, gpus in sorted(envs, key=str):
        lines.append(f"- Machine: {cpu} ({cpus} CPUs available)"
                     + (f"; GPU: {', '.join(gpus)}" if gpus else "; no GPU"))
    versions: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for k, v in r.versions.items():
            if v:
                versions[k].add(str(v))
    if versions:
        lines.append("- Versions: " + ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in sorted(versions.items())))
    runs = sorted({(r.run_id, r.profile, r.dataset, r.epochs, r.threads, (r.env or {}).get("commit"))
                   for r in records}, key=str)
    for run_id, profile, dataset, epochs, threads, commit in runs:
        lines.append(f"- Run {run_id}: profile {profile}, dataset {dataset}, {epochs} epochs, "
                     f"{threads} CPU threads per worker, commit {commit or 'unknown'}")
    if records:
        lines.append(modes.summary(records))
    stick = yardstick.describe(records)
    return lines + ([stick] if stick else [])


NOTES = """\
How to read this: *train s* is the sum of all epochs' training steps (evaluation excluded), timed
by the harness with a device sync before each clock read; *first epoch* includes compilation and
warm-up, *steady epoch* is the median of epochs 2..n; *samples/s* is over steady epochs; *peak RSS*
is the worker process's peak resident memory (imports, data and framework included); *peak device
mem* is the framework's own allocator peak. *GFLOP/s* is the task's analytic training FLOPs per
sample (2 per multiply-add of its conv and dense layers, training = 3 x forward, frozen layers less:
bench/spec/flops.py) times samples/s; *MFU* divides it by one peak per machine, device and precision,
the same for every framework (the line above names it: on GPU the datasheet's dense peak, else the
best square-matmul peak any framework measured there), so MFUs compare across frameworks; *MFU own
peak* divides by the peak measured in the same framework on the same machine and thread count
(cached per machine, see the records' `peaks`): how near a framework gets to its own matmul speed;
on GPU *MFU nominal* divides by the datasheet's dense peak. Every framework starts from the same
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
                         fmt_s(ph.get("time_s")), fmt_s(ph.get("first_epoch_s")), fmt_s(ph.get("steady_epoch_s")),
                         fmt_s(ph.get("first_step_s")), fmt_step({"steady_step_s": ph.get("steady_step_s"),
                         "steady_step_iqr_s": ph.get("steady_step_iqr_s"), "no_window": ph.get("step_windows") == 0}),
                         "–" if ips is None else f"{ips:,.1f}", fmt_mfu(ph.get("mfu")),
                         fmt_pct(ph.get("val_accuracy"))])
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
    """One warning per task (and optimizer: each runs the task with its own rule) whose records come from
    more than one version of its spec."""
    out = []
    for task, opt in sorted({(r.task, r.optimizer or "") for r in records}):
        hashes = sorted({r.spec_hash for r in records if r.task == task and (r.optimizer or "") == opt})
        if len(hashes) > 1:
            out.append(f"{task}{' with ' + opt if opt else ''}: records from {len(hashes)} versions of the spec "
                       f"({', '.join(hashes)}); their numbers are not comparable — report them apart")
    return out


def markdown_report(records: list[Record], problems: list[str] | None = None) -> str:
    header, rows = table_rows(records)
    out = ["# bench report", "", *_environment(records), "", markdown_table(header, rows), ""]
    refs = sorted({(r.task, r.dataset) for r in records if r.task in TASKS})
    ref_lines = [f"{t} on {d}: {100 * TASKS[t].reference_accuracy[d]:.1f} %" for t, d in refs
                 if d in TASKS[t].reference_accuracy]
    if ref_lines:
        out += ["Reference accuracies (published Keras examples; for cats_vs_dogs the target on "
                "validation photos), full standard profile: " + "; ".join(ref_lines) + ".", ""]
    targets = [f"{t} on {d}: {100 * TASKS[t].target_accuracy[d]:.1f} %" for t, d in refs
               if d in TASKS[t].target_accuracy]
    if targets:
        out += ["Time-to-accuracy targets: " + "; ".join(targets) + ".", ""]
    windows = [f"{t} K {m.warmup_steps}, M {m.window_steps}, at most {m.probe_steps} steps"
               for t in sorted({t for t, _ in refs}) for m in [TASKS[t].measurement]]
    if windows:
        out += ["Steady step: a probe after training, per phase, so that its syncs stay out of the train time "
                "(K warm-up steps, then windows of M steps): " + "; ".join(windows) + ".", ""]
    out += phase_section(records)
    out += sweep.markdown_section(records)
    out += optimizers.markdown_section(records)
    out += inference.markdown_section(records)
    out += scaling.markdown_section(records)
    bad = [r for r in records if r.status != "ok"]
    if bad:
        out += ["## Cells that did not run", ""]
        out += [f"- {r.task}/{r.framework}/{r.device} (seed {r.seed}): **{r.status}** — "
                f"{(r.error or '').splitlines()[0] if r.error else 'no reason given'}" for r in bad]
        out.append("")
    if problems:
        out += ["## Problems with the records", "", *[f"- {p}" for p in summarize(problems)], ""]
    out += [NOTES, ""]
    return "\n".join(out)

"""Comparison tables from records: rows task x framework, columns per device (rich and Markdown)."""
from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from bench.records import Record
from bench.report import yardstick
from bench.spec import FRAMEWORKS, TASKS, modes

Cell = dict[str, Any]


def fmt_pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.2f} %"


def fmt_s(v: float | None) -> str:
    return "–" if v is None else (f"{v:.2f}" if v < 100 else f"{v:.0f}")


def fmt_bytes(v: float | None) -> str:
    return "–" if v is None else f"{v / 2**20:,.0f} MiB"


def fmt_gflops(v: float | None) -> str:
    return "–" if v is None else f"{v / 1e9:,.1f}"


def fmt_mfu(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


METRICS = ("test_accuracy", "train_time_s", "steady_epoch_s", "first_epoch_s", "samples_per_s",
           "peak_host_rss_bytes", "peak_device_bytes", "eval_time_s", "achieved_flops", "mfu", "mfu_nominal",
           "first_step_s", "steady_step_s", "steady_step_iqr_s", "time_to_accuracy_s", "train_added_rss_bytes",
           "latency_b1_s", "predict_samples_per_s", "saved_bytes", "mfu_headline")
HEADLINE = "mfu_headline"  # achieved over one yardstick per machine and precision (bench/report/yardstick.py)
KEY = ["task", "framework", "device"]
VARIANT_FIELDS = ("profile", "dataset", "epochs", "train_size", "optimizer")  # in the row label when they vary
NETWORK_ONLY = ("epochs", "optimizer")  # a classical baseline (epochs 0) has neither


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


def number(v: Any) -> float | None:
    """A finite int/float (records come from files: anything else is treated as missing)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def median_of(values: list[Any], scale: float = 1.0) -> float | None:
    """The median of the finite numbers among values (fields read from files), times scale; None if none."""
    import statistics

    nums = [x for v in values if (x := number(v)) is not None]
    return scale * statistics.median(nums) if nums else None


def task_labels(records: list[Record]) -> list[str]:
    """Each record's task as its row shows it: 'mnist_mlp (quick, 2 epochs)' where records of that task
    differ in profile, dataset, epochs, size or optimizer (a median is never taken over them); the plain
    name otherwise."""
    # A classical baseline's single fit (epochs 0, no optimizer) does not make the networks' rows vary.
    varying = {t: [f for f in VARIANT_FIELDS
                   if len({getattr(r, f) for r in records if r.task == t and (r.epochs or f not in NETWORK_ONLY)}) > 1]
               for t in {r.task for r in records}}
    out = []
    for r in records:
        parts = [p for p in (variant_part(r, f) for f in varying[r.task]) if p]
        out.append(f"{r.task} ({', '.join(parts)})" if parts else r.task)
    return out


def variant_part(r: Record, name: str) -> str:
    if name == "epochs":
        return (f"{r.epochs} epoch" + ("s" if r.epochs != 1 else "")) if r.epochs else "one fit"
    if name == "train_size":
        return f"n={r.train_size:,}" if r.train_size else "n=all"
    if name == "optimizer":
        return r.optimizer or ""  # a baseline has none
    return str(getattr(r, name))


def row_keys(records: list[Record]) -> list[tuple[str, str, str]]:
    """(task label, framework label, device) of each record: the key a report row and plot bar are taken over."""
    return list(zip(task_labels(records), modes.framework_labels(records), (r.device for r in records)))


def aggregate(records: list[Record]) -> dict[tuple[str, str, str], Cell]:
    """One entry per row key (bench.records.GROUP_KEY, as labelled by row_keys): medians over its ok
    records (seeds, repeats)."""
    from bench.records import frame

    df = frame(records)
    if len(df):
        keys = row_keys(records)
        df["task"], df["framework"] = [k[0] for k in keys], [k[1] for k in keys]
        df[HEADLINE] = [math.nan if v is None else v for v in yardstick.headline(records)]
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


def fmt_step(c: Cell) -> str:
    """Steady step in ms with its IQR; 'too few steps' when no window of M steps fit after warm-up."""
    if c["steady_step_s"] is None:
        return "too few steps" if c.get("no_window") else "–"
    iqr = c["steady_step_iqr_s"]
    return f"{1e3 * c['steady_step_s']:.2f}" + ("" if iqr is None else f" ± {1e3 * iqr:.2f}")


def fmt_tta(c: Cell) -> str:
    """Median time to accuracy over the repeats that reached it; 'not reached' is a result, not an error."""
    if c.get("tta_target") is None or not c["n"]:
        return "–"
    if not c["tta_reached"]:
        return "not reached"
    t = fmt_s(c["time_to_accuracy_s"])
    return t if c["tta_reached"] == c["n"] else f"{t} ({c['tta_reached']}/{c['n']} reached)"


def fmt_rate(v: float | None) -> str:
    return "–" if v is None else f"{v:,.0f}"


def _with_spread(c: Cell, name: str, fmt: Callable[[float | None], str]) -> str:
    """'median [CI low–high] CV x %' with repeats, the median alone without."""
    sp = c.get(name + "_spread")
    if c[name] is None or sp is None:
        return fmt(c[name])
    return f"{fmt(c[name])} [{fmt(sp[0])}–{fmt(sp[1])}] CV {100 * sp[2]:.1f} %"


def order_tasks(labels: set[str]) -> list[str]:
    """Task row labels in the spec's task order, a task's variants together, training-set sizes by number."""
    known = list(TASKS)

    def key(lab: str) -> tuple[int, str, float, str]:
        name = lab.split(" (")[0]
        size = re.search(r"n=([\d,]+|all)", lab)
        n = -1.0 if size is None else math.inf if size[1] == "all" else float(size[1].replace(",", ""))
        rest = re.sub(r"n=([\d,]+|all)", "", lab)
        return (known.index(name) if name in known else len(known), rest, n, lab)
    return sorted(labels, key=key)


def in_order(names: set[str], preferred: tuple[str, ...] | list[str]) -> list[str]:
    """The names in the preferred order, any others after it, sorted."""
    return [n for n in preferred if n in names] + sorted(names - set(preferred))


Column = tuple[str, Callable[[Cell], str], bool]  # header, formatter, shown in the compact table


def _device_columns(device: str, compact: bool) -> list[tuple[str, Callable[[Cell], str]]]:
    d = device.upper()
    cols: list[Column] = [
        (f"{d} status", lambda c: c["status"] + (f" ({c['n']}/{c['of']})" if c["of"] > 1 else ""), True),
        (f"{d} accuracy", lambda c: fmt_pct(c["test_accuracy"]), True),
        (f"{d} train s", lambda c: _with_spread(c, "train_time_s", fmt_s), True),
        (f"{d} first epoch s", lambda c: fmt_s(c["first_epoch_s"]), False),
        (f"{d} steady epoch s", lambda c: fmt_s(c["steady_epoch_s"]), True),
        (f"{d} first step s", lambda c: fmt_s(c["first_step_s"]), False),
        (f"{d} steady step ms ± IQR", fmt_step, True),
        (f"{d} time to acc s", fmt_tta, False),
        (f"{d} samples/s", lambda c: _with_spread(c, "samples_per_s", fmt_rate), False),
        (f"{d} GFLOP/s", lambda c: fmt_gflops(c["achieved_flops"]), True),
        (f"{d} MFU", lambda c: fmt_mfu(c[HEADLINE]), True),  # one peak for all frameworks: comparable
        (f"{d} MFU own peak", lambda c: fmt_mfu(c["mfu"]), False),  # the framework's own matmul peak
        (f"{d} peak RSS", lambda c: fmt_bytes(c["peak_host_rss_bytes"]), device == "cpu"),
        (f"{d} train-added RSS", lambda c: fmt_bytes(c["train_added_rss_bytes"]), False),
        (f"{d} batch-1 latency ms", lambda c: "–" if c["latency_b1_s"] is None else f"{1e3 * c['latency_b1_s']:.3g}",
         False),
        (f"{d} predictions/s", lambda c: fmt_rate(c["predict_samples_per_s"]), False),
        (f"{d} saved MiB", lambda c: "–" if c["saved_bytes"] is None else f"{c['saved_bytes'] / 2**20:,.2f}", False),
    ]
    if device != "cpu":
        cols.append((f"{d} peak device mem", lambda c: fmt_bytes(c["peak_device_bytes"]), True))
        cols.append((f"{d} MFU nominal", lambda c: fmt_mfu(c["mfu_nominal"]), False))
    return [(name, fn) for name, fn, short in cols if short or not compact]


def table_rows(records: list[Record], compact: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (compact: the terminal's narrower column set)."""
    agg = aggregate(records)
    tasks = order_tasks({k[0] for k in agg})
    fws = modes.ordered({k[1] for k in agg}, FRAMEWORKS)
    devices = in_order({k[2] for k in agg}, ("cpu", "gpu"))
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
                cpu, gpu = (agg.get(k, {}).get("train_time_s") for k in (cpu_twin(agg, (t, f, "gpu")), (t, f, "gpu")))
                row.append(f"{cpu / gpu:.1f}×" if cpu and gpu else "–")
            rows.append(row)
    return header, rows


def cpu_twin(cells: dict[tuple[str, str, str], Any], key: tuple[str, str, str]) -> tuple[str, str, str]:
    """The CPU row a GPU row's speedup is over: the same label, else the framework's plain (CPU-default) row
    (a GPU label always names its mode: 'torch (compiled, fp32)' over 'torch')."""
    same = (key[0], key[1], "cpu")
    plain = (key[0], re.sub(r" \([^)]*\)", "", key[1], count=1), "cpu")
    return same if same in cells or plain not in cells else plain


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
    rule = "|" + "|".join("---" if i < 2 else "---:" for i in range(len(header))) + "|"
    lines = ["| " + " | ".join(esc[0]) + " |", rule]
    lines += ["| " + " | ".join(r) + " |" for r in esc[1:]]
    return "\n".join(lines)

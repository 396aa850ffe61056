"""Report plots as PNG (matplotlib's Agg canvas, imported lazily): metrics per cell and learning curves."""
from __future__ import annotations

import io
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.records import Record
from bench.report.tables import HEADLINE, aggregate, cpu_twin, in_order, number, order_tasks
from bench.spec import FRAMEWORKS

# Okabe-Ito colours (distinguishable with colour-blindness); a framework keeps its colour in every plot.
COLOURS = {"tf": "#E69F00", "torch": "#0072B2", "jax": "#009E73"}
SPARE_COLOURS = ("#CC79A7", "#56B4E9", "#D55E00", "#000000")
# Learning-curve series: line style per series; marker per device.
SERIES: dict[str, Any] = {"train_loss": "-", "val_loss": "--", "test_loss": ":", "val_accuracy": "--",
                          "test_accuracy": ":"}
MARKERS = {"cpu": "o", "gpu": "s"}
DPI = 100

Key = tuple[str, str, str]  # task, framework, device


@dataclass(frozen=True)
class Plot:
    """One embedded picture: a stable name, a caption, its alt text and the PNG bytes."""

    name: str
    title: str
    alt: str
    png: bytes
    width: int
    height: int


def colour(fw: str) -> str:
    if fw in COLOURS:
        return COLOURS[fw]
    return SPARE_COLOURS[sum(map(ord, fw)) % len(SPARE_COLOURS)]  # stable for a name across reports


class _Layout:
    """The grid every bar plot shares: groups (task, device) on x, one bar per framework."""

    def __init__(self, cells: dict[Key, dict[str, Any]]):
        self.tasks = order_tasks({k[0] for k in cells})
        self.fws = in_order({k[1] for k in cells}, FRAMEWORKS)
        self.devices = in_order({k[2] for k in cells}, ("cpu", "gpu"))
        self.cells = cells

    def groups(self, devices: list[str] | None = None) -> list[tuple[str, str]]:
        devs = devices or self.devices
        return [(t, d) for t in self.tasks for d in devs if any((t, f, d) in self.cells for f in self.fws)]

    def label(self, task: str, device: str) -> str:
        return task if len(self.devices) == 1 else f"{task}\n{device}"


def figure(width: float, height: float, ncols: int = 1) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)  # no pyplot: no global state, no GUI backend
    return fig, list(fig.subplots(1, ncols, squeeze=False)[0])


def to_plot(fig: Any, name: str, title: str, alt: str) -> Plot:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    w, h = (int(round(v * DPI)) for v in fig.get_size_inches())
    return Plot(name, title, alt, buf.getvalue(), w, h)


def _bars(ax: Any, lay: _Layout, value: Callable[[Key], float | None], fmt: Callable[[float], str],
          ylabel: str, groups: list[tuple[str, str]], ci: Callable[[Key], tuple[float, float] | None] | None = None,
          ) -> list[str]:
    """Grouped bars; a cell that did not run is written as its status. Returns alt-text parts."""
    from matplotlib.patches import Patch

    width = 0.8 / len(lay.fws)
    said: list[str] = []
    top = bottom = 0.0
    for i, (task, dev) in enumerate(groups):
        for j, fw in enumerate(lay.fws):
            key, x = (task, fw, dev), i + (j - (len(lay.fws) - 1) / 2) * width
            cell = lay.cells.get(key)
            if cell is None:
                continue
            v = value(key)
            where = f"{task} {fw}" + (f" {dev}" if len(lay.devices) > 1 else "")
            if v is None:  # not run, or ran without this measurement
                why = cell["status"] if cell["status"] != "ok" else "no value"
                ax.text(x, 0, f" {why}", rotation=90, ha="center", va="bottom", fontsize=8, color=colour(fw))
                said.append(f"{where}: {why}")
                continue
            ax.bar(x, v, width * 0.92, color=colour(fw))
            interval = ci(key) if ci else None
            if interval is not None:  # 95 % CI of the mean; a bar below 0 s makes no sense, clip it
                lo, hi = max(interval[0], 0.0), interval[1]
                ax.vlines(x, lo, hi, color="black", linewidth=1.2)
                ax.hlines([lo, hi], x - width / 5, x + width / 5, color="black", linewidth=1.2)
                top = max(top, hi)
            top, bottom = max(top, v), min(bottom, v)
            ax.text(x, v, fmt(v), ha="center", va="bottom", fontsize=7)
            said.append(f"{where} {fmt(v)}" + (f" (95 % CI {fmt(interval[0])}–{fmt(interval[1])})" if interval else ""))
    ax.set_xticks(range(len(groups)), [lay.label(t, d) for t, d in groups], fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_ylim(bottom * 1.15, top * 1.15 if top > 0 else 1)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(handles=[Patch(color=colour(f), label=f) for f in lay.fws], fontsize=8, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    return said


def _bar_plot(name: str, title: str, lay: _Layout, value: Callable[[Key], float | None],
              fmt: Callable[[float], str], ylabel: str, ci: Callable[[Key], tuple[float, float] | None] | None = None,
              groups: list[tuple[str, str]] | None = None) -> Plot | None:
    groups = groups if groups is not None else lay.groups()
    if not any(value((t, f, d)) is not None for t, d in groups for f in lay.fws if (t, f, d) in lay.cells):
        return None  # nothing measured: no empty picture
    fig, (ax,) = figure(max(5.0, 1.4 * len(groups) + 2.5), 3.4)
    said = _bars(ax, lay, value, fmt, ylabel, groups, ci)
    ax.set_title(title, fontsize=10)
    return to_plot(fig, name, title, f"Bar chart, {title}: " + "; ".join(said) + ".")


def _metric(cells: dict[Key, dict[str, Any]], name: str, scale: float = 1.0) -> Callable[[Key], float | None]:
    def get(key: Key) -> float | None:
        v = number((cells.get(key) or {}).get(name))
        return None if v is None else v * scale
    return get


def _memory(lay: _Layout) -> Plot | None:
    host = _metric(lay.cells, "peak_host_rss_bytes", 1 / 2**20)
    dev = _metric(lay.cells, "peak_device_bytes", 1 / 2**20)
    groups = lay.groups()
    has = [any(get(k) is not None for k in lay.cells) for get in (host, dev)]
    if not any(has):
        return None
    panels = [(get, label) for get, label, h in ((host, "peak host RSS (MiB)", has[0]),
                                                 (dev, "peak device memory (MiB)", has[1])) if h]
    fig, axes = figure(max(5.0, (1.4 * len(groups) + 1.5) * len(panels) + 1.0), 3.4, len(panels))
    said = []
    for ax, (get, label) in zip(axes, panels):
        said += [f"{label}: " + "; ".join(_bars(ax, lay, get, lambda v: f"{v:,.0f}", label, groups))]
        ax.set_title(label, fontsize=10)
    title = "Peak memory (median over repeats)"
    return to_plot(fig, "memory", title, f"Bar chart, {title}. " + ". ".join(said) + ".")


Lines = dict[str, list[tuple[Record, list[float], list[float]]]]  # series -> (record, epochs, values)


def _curve_lines(runs: list[Record]) -> tuple[Lines, set[float]]:
    """Each run's points per learning-curve series, and where a new training phase begins (x)."""
    lines: Lines = {}
    phase_starts: set[float] = set()
    for r in runs:
        entries = [e for e in r.history if isinstance(e, dict)]
        for s in SERIES:
            raw = [(number(e.get("epoch")) or float(i + 1), number(e.get(s))) for i, e in enumerate(entries)]
            pts = [(x, y) for x, y in raw if y is not None]
            if pts:
                lines.setdefault(s, []).append((r, [p[0] for p in pts], [p[1] for p in pts]))
        for prev, e in zip(entries, entries[1:]):
            if e.get("phase") != prev.get("phase") and number(e.get("epoch")) is not None:
                phase_starts.add(float(e["epoch"]) - 0.5)
    return lines, phase_starts


def _curves(task: str, records: list[Record], optimizer: str | None = None) -> Plot | None:
    """Per-epoch history of every ok record of a task: loss and accuracy panels, one colour per framework."""
    runs = [r for r in records if r.task == task and r.status == "ok" and isinstance(r.history, list)]
    lines, phase_starts = _curve_lines(runs)
    panels = [p for p in (("loss", [s for s in SERIES if s.endswith("loss") and s in lines]),
                          ("accuracy (%)", [s for s in SERIES if s.endswith("accuracy") and s in lines])) if p[1]]
    if not panels:
        return None
    fig, axes = figure(4.2 * len(panels) + 1.6, 3.4, len(panels))
    said = []
    for ax, (label, series) in zip(axes, panels):
        for s in series:
            scale = 100.0 if s.endswith("accuracy") else 1.0
            finals: dict[str, list[float]] = {}
            for r, xs, ys in lines[s]:
                ax.plot(xs, [y * scale for y in ys], SERIES[s], color=colour(r.framework), linewidth=1.2,
                        marker=MARKERS.get(r.device, "^"), markersize=3.5, alpha=0.85)
                finals.setdefault(r.framework, []).append(ys[-1] * scale)
            said.append(f"{s} at the last epoch: " + ", ".join(f"{fw} {statistics.median(v):.3g}"
                                                               for fw, v in finals.items()))
        for x in phase_starts:
            ax.axvline(x, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_ylabel(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    axes[-1].legend(handles=_curve_legend(lines), fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    what = f"{task}, {optimizer}" if optimizer else task
    title = f"Learning curves: {what} ({len(runs)} run{'s' if len(runs) != 1 else ''}, one line per run)"
    fig.suptitle(title, fontsize=10)
    name = f"curves-{task}" + (f"-{optimizer}" if optimizer else "")
    return to_plot(fig, name, title, f"Line chart, {title}. " + "; ".join(said) + ".")


def _curve_legend(lines: Lines) -> list[Any]:
    """Colour per framework, line style per split, marker per device (when there are two)."""
    from matplotlib.lines import Line2D

    devices = in_order({r.device for r, _, _ in sum(lines.values(), [])}, ("cpu", "gpu"))
    fws = in_order({r.framework for r, _, _ in sum(lines.values(), [])}, FRAMEWORKS)
    handles = [Line2D([], [], color=colour(f), label=f) for f in fws]
    splits = {s.split("_")[0]: SERIES[s] for s in SERIES if s in lines}  # train / val / test
    handles += [Line2D([], [], color="grey", linestyle=style, label=split) for split, style in splits.items()]
    if len(devices) > 1:
        handles += [Line2D([], [], color="grey", marker=MARKERS.get(d, "^"), linestyle="", label=d) for d in devices]
    return handles


def render(records: list[Record]) -> list[Plot]:
    """Every plot the records support, in reading order; plots without data are left out."""
    import warnings

    # Absurd values from edited records (1e308 s) make matplotlib warn about overflow and layout;
    # the picture is still drawn, and the report's stderr stays free of library noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _render(records)


def _render(records: list[Record]) -> list[Plot]:
    cells = aggregate(records)
    lay = _Layout(cells)
    pct, secs = (lambda v: f"{v:.1f}"), (lambda v: f"{v:.3g}")
    repeats = any(c.get("train_time_s_spread") for c in cells.values())
    spread = {k: s for k, c in cells.items() if (s := c.get("train_time_s_spread"))}
    out = [
        _bar_plot("accuracy", "Test accuracy per task and framework (%, median over repeats)", lay,
                  _metric(cells, "test_accuracy", 100.0), pct, "test accuracy (%)"),
        _bar_plot("train-time", "Training time (s, median" + (", whiskers: 95 % CI of the mean)" if repeats else ")"),
                  lay, _metric(cells, "train_time_s"), secs, "train time (s)",
                  ci=lambda k: (spread[k][0], spread[k][1]) if k in spread else None),
        _bar_plot("steady-epoch", "Steady epoch time (s, median of epochs 2..n)", lay,
                  _metric(cells, "steady_epoch_s"), secs, "steady epoch (s)"),
        _memory(lay),
    ]
    if "cpu" in lay.devices and "gpu" in lay.devices:
        train = _metric(cells, "train_time_s")

        def speedup(key: Key) -> float | None:
            c, g = train(cpu_twin(cells, (key[0], key[1], "gpu"))), train((key[0], key[1], "gpu"))
            return c / g if c and g else None
        sub = _Layout({(t, f, "gpu"): cells[(t, f, "gpu")] for t, f, d in cells if d == "gpu"})
        sub.devices = ["gpu"]
        out.append(_bar_plot("speedup", "GPU over CPU speedup of training time (×)", sub, speedup,
                             lambda v: f"{v:.1f}×", "speedup (×)", groups=sub.groups(["gpu"])))
    out.append(_bar_plot("mfu", "Model FLOPs utilisation (%, median over repeats; one peak per machine and "
                                "precision for every framework)", lay,
                         _metric(cells, HEADLINE, 100.0), lambda v: f"{v:.2g}", "MFU (%)"))
    out.append(_bar_plot("latency", "Batch-1 prediction latency (ms, median of the calls)", lay,
                         _metric(cells, "latency_b1_s", 1e3), lambda v: f"{v:.2g}" if v < 100 else f"{v:.0f}",
                         "latency (ms)"))
    for t in order_tasks({r.task for r in records}):
        optimizers = sorted({r.optimizer for r in records if r.task == t and r.optimizer})
        if len(optimizers) < 2:
            out.append(_curves(t, records))
        else:  # one picture per optimizer: colours are frameworks
            out += [_curves(t, [r for r in records if r.optimizer == o], o) for o in optimizers]
    return [p for p in out if p is not None]

"""The plots of a training-set-size sweep: accuracy and training time against size (log x), one line per
framework and baseline, 95 % bands where there are repeats."""
from __future__ import annotations

from typing import Any

from bench.records import Record
from bench.report.plots import Plot, colour, figure, to_plot
from bench.report.sweep import Curve, crossovers, curves

# Networks keep their framework colour; baselines are black, told apart by line style.
BASELINE_STYLES = ("--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)))
DEVICE_MARKERS = {"cpu": "o", "gpu": "s"}


def _style(c: Curve, baselines: list[str]) -> dict[str, Any]:
    if c.baseline:
        return {"color": "#000000", "linestyle": BASELINE_STYLES[baselines.index(c.label) % len(BASELINE_STYLES)]}
    return {"color": colour(c.framework), "linestyle": "-"}


def _draw(ax: Any, cs: list[Curve], value: str, scale: float) -> None:
    baselines = sorted({c.label for c in cs if c.baseline})
    for c in cs:
        pts = [p for p in c.points if getattr(p, value) is not None]
        if not pts:
            continue
        xs = [p.n for p in pts]
        label = c.label + (f" ({c.device})" if len({k.device for k in cs}) > 1 else "")
        ax.plot(xs, [scale * getattr(p, value) for p in pts], marker=DEVICE_MARKERS.get(c.device, "^"),
                label=label, **_style(c, baselines))
        band = [getattr(p, "accuracy_ci" if value == "accuracy" else "time_ci") for p in pts]
        if all(b is not None for b in band):
            ax.fill_between(xs, [scale * b[0] for b in band], [scale * b[1] for b in band],
                            color=_style(c, baselines)["color"], alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    sizes = sorted({p.n for c in cs for p in c.points})
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes], rotation=30)
    ax.minorticks_off()  # the measured sizes are the ticks; log-scale minor labels would crowd them
    ax.grid(True, which="major", alpha=0.3)
    ax.set_xlabel("training examples (log scale)")


def render(records: list[Record]) -> list[Plot]:
    """Two plots per swept (task, dataset): the learning curve and the training time."""
    out = []
    for (task, dataset), cs in curves(records).items():
        name = f"{task}-{dataset}"
        fig, (acc, secs) = figure(11.0, 4.2, ncols=2)
        _draw(acc, cs, "accuracy", 100.0)
        acc.set_ylabel("test accuracy (%)")
        acc.set_title(f"{task} ({dataset}): accuracy")
        _draw(secs, cs, "train_time_s", 1.0)
        secs.set_yscale("log")
        secs.set_ylabel("training time (s, log scale)")
        secs.set_title("training time")
        secs.legend(fontsize="small", loc="best")
        words = "; ".join(crossovers(cs)) or "no baseline in this run"
        out.append(to_plot(fig, f"sweep-{name}", f"{task} on {dataset}: test accuracy and training time against "
                           "training-set size", f"Learning curves of {task}: {words}."))
    return out

"""Data-parallel scaling in a report: throughput per device count, speed-up and scaling efficiency
(throughput at N / (N x throughput at 1)) where both were run, and a plot of throughput against N."""
from __future__ import annotations

import re
from collections import defaultdict

from bench.records import Record
from bench.report.plots import Plot, colour, figure, to_plot
from bench.report.tables import markdown_table, median_of, number, row_keys

Row = tuple[str, str, str]  # task label, framework label without the device count, device
WIDTH = re.compile(r" ×\d+$")


def throughputs(records: list[Record]) -> dict[Row, dict[int, list[Record]]]:
    """Ok network records by row and device count; only rows of which some ran on more than one device."""
    out: dict[Row, dict[int, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for r, (task, fw, dev) in zip(records, row_keys(records)):
        if r.status == "ok" and number(r.samples_per_s):
            out[(task, WIDTH.sub("", fw), dev)][r.devices].append(r)
    return {k: dict(sorted(v.items())) for k, v in out.items() if max(v) > 1}


def _median(rs: list[Record], field: str) -> float | None:
    return median_of([getattr(r, field) for r in rs])


def efficiency(by_n: dict[int, list[Record]], n: int) -> float | None:
    """Throughput at n over n times the throughput at 1 device (None when 1 device was not run)."""
    one, at_n = _median(by_n.get(1, []), "samples_per_s"), _median(by_n[n], "samples_per_s")
    return at_n / (n * one) if one and at_n else None


def _input(rs: list[Record]) -> str:
    """The input path the records name (settings.input): device-resident and host batches time differently."""
    said = {str((r.settings or {}).get("input", "")).split(":")[0].split(" ")[0] for r in rs}
    names = {"device-resident": "device", "host": "host"}
    return " / ".join(sorted(names.get(w, "–") for w in said))


def markdown_section(records: list[Record]) -> list[str]:
    rows = []
    for (task, fw, dev), by_n in throughputs(records).items():
        one = _median(by_n.get(1, []), "samples_per_s")
        for n, rs in by_n.items():
            thr, step, eff = _median(rs, "samples_per_s"), _median(rs, "steady_step_s"), efficiency(by_n, n)
            rows.append([task, fw, dev, str(n), str(rs[0].per_device_batch or "–"), _input(rs),
                         "–" if step is None else f"{1e3 * step:.3g}", f"{thr:,.0f}" if thr else "–",
                         f"{thr / one:.2f}×" if thr and one else "–", "–" if eff is None else f"{100 * eff:.0f} %"])
    if not rows:
        return []
    return ["## Data-parallel scaling", "",
            markdown_table(["task", "framework", "device", "devices", "per-device batch", "input",
                            "steady step ms", "samples/s", "speed-up", "scaling efficiency"], rows), "", NOTES, ""]


NOTES = """\
Data-parallel cells (`--devices N`) train the spec's global batch split over N devices (torch:
DistributedDataParallel under torchrun; TensorFlow: MirroredStrategy; JAX: one jit over a device mesh).
Scaling efficiency = samples/s at N / (N × samples/s at 1 device), medians over repeats. On a CPU, the
N "devices" share the same cores (the cell's thread budget is split, not multiplied): expect no speed-up
there; it proves the training is the same, not that it is faster (docs/distributed.md). Input: on one
device MNIST is device-resident; data-parallel cells take host batches, as DDP, MirroredStrategy and
sharded JAX users feed them, so the efficiency includes that path's cost (1–4 % on a 2-core CPU:
docs/protocol.md)."""


def plot(records: list[Record]) -> Plot | None:
    """Samples/s against the device count: a panel per task, a line per framework and device, the ideal
    (linear from 1 device) dashed."""
    rows = throughputs(records)
    if not rows:
        return None
    tasks = list(dict.fromkeys(task for task, _, _ in rows))
    fig, axes = figure(3.6 * len(tasks) + 1.6, 3.4, len(tasks))
    said = []
    for ax, task in zip(axes, tasks):
        for (t, fw, dev), by_n in rows.items():
            if t != task:
                continue
            ns = list(by_n)
            thr = [_median(by_n[n], "samples_per_s") or 0.0 for n in ns]
            c = colour(fw.split(" ")[0])
            ax.plot(ns, thr, "-o" if dev == "cpu" else "-s", color=c, label=f"{fw} {dev}", linewidth=1.2,
                    markersize=4)
            if 1 in by_n:
                ax.plot(ns, [thr[0] * n for n in ns], "--", color=c, linewidth=0.8, alpha=0.6)
            said.append(f"{task} {fw} {dev}: " + ", ".join(f"{n} devices {v:,.0f}/s" for n, v in zip(ns, thr)))
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("devices", fontsize=9)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("training samples/s", fontsize=9)
    axes[-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    title = "Data-parallel throughput against the number of devices (dashed: linear scaling from 1 device)"
    fig.suptitle(title, fontsize=10)
    return to_plot(fig, "scaling", title, f"Line chart, {title}. " + "; ".join(said) + ".")

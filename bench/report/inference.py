"""Prediction and persistence in a report: batch-1 latency and throughput per row, and each saved format's
size, save and load times and whether the reloaded model predicted the same logits."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from bench.records import Record
from bench.report.tables import in_order, markdown_table, median_of, order_tasks, row_keys
from bench.spec import FRAMEWORKS, modes
from bench.spec.protocol import INFERENCE

Key = tuple[str, str, str]
FORMATS = ("keras", "state_dict", "export", "msgpack", "npz")  # each framework's usual one first, the neutral last


def _groups(records: list[Record]) -> dict[Key, list[Record]]:
    """Ok records that measured inference, by report row (task label, framework label, device), in table order."""
    out: dict[Key, list[Record]] = defaultdict(list)
    for r, key in zip(records, row_keys(records)):
        if r.status == "ok" and r.latency_b1_s is not None:
            out[key].append(r)
    tasks = order_tasks({k[0] for k in out})
    fws = modes.ordered({k[1] for k in out}, FRAMEWORKS)
    devices = in_order({k[2] for k in out}, ("cpu", "gpu"))
    return {k: out[k] for t in tasks for f in fws for d in devices if (k := (t, f, d)) in out}


def _ms(v: float | None) -> str:
    return "–" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.3g}")


def _size(v: float | None) -> str:
    return "–" if v is None else (f"{v / 2**20:,.2f} MiB" if v >= 2**20 else f"{v / 2**10:,.0f} KiB")


def _reloaded(entries: list[dict[str, Any]]) -> str:
    """'equal' when every repeat's reload gave the trained logits bit for bit, else the largest gap or the error."""
    errors = [str(e["error"]) for e in entries if "error" in e]
    if errors:
        return "failed: " + errors[0][:120]
    if all(e.get("equal") is True for e in entries):
        return "equal (bit for bit)"
    gap = max(float(e.get("max_abs_diff") or 0.0) for e in entries)
    return f"differs: max abs {gap:.1e}"


def markdown_section(records: list[Record]) -> list[str]:
    groups = _groups(records)
    if not groups:
        return []
    speed = [[*key, _ms(median_of([r.latency_b1_s for r in rs], 1e3)),
              _ms(median_of([r.latency_b1_p99_s for r in rs], 1e3)),
              f"{median_of([r.predict_samples_per_s for r in rs]) or 0:,.0f} (batch {rs[0].predict_batch})"]
             for key, rs in groups.items()]
    saved = []
    for key, rs in groups.items():
        for fmt in in_order({f for r in rs for f in r.saved}, FORMATS):
            entries = [e for r in rs if isinstance(e := r.saved.get(fmt), dict)]
            saved.append([*key, fmt, _size(median_of([e.get("bytes") for e in entries])),
                          _ms(median_of([e.get("save_s") for e in entries], 1e3)),
                          _ms(median_of([e.get("load_s") for e in entries], 1e3)), _reloaded(entries)])
    return ["## Prediction and saved models", "",
            markdown_table(["task", "framework", "device", "batch-1 latency ms (median)", "p99 ms",
                            "predictions/s"], speed), "",
            markdown_table(["task", "framework", "device", "format", "size", "save ms", "load ms",
                            "reloaded logits"], saved), "", NOTES, ""]


NOTES = f"""\
After training, in the framework's inference path (Keras: the model's compiled call; torch:
inference_mode, torch.compile'd in compiled mode; JAX: the jitted apply): batch-1 latency over
{INFERENCE.latency_calls} calls after {INFERENCE.latency_warmup} warm-up calls, and throughput at
the evaluation batch (median of {INFERENCE.throughput_calls} calls); every call returns NumPy
logits, so the device sync and the host copy are included. Each format is written to an empty folder
(size: all it holds), then loaded into a new model (*load*: file to a model ready to predict, its
first call's compilation excluded) whose logits on one evaluation batch are compared with the
trained model's. *npz* is the neutral file every framework reads; *keras*: model.save (.keras);
*state_dict*: torch.save of the state dict, loaded with weights_only=True; *export*: torch.export
(.pt2); *msgpack*: the Flax NNX state through flax.serialization. No optimizer state is saved."""

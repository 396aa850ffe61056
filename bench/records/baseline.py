"""Named baselines under results/baselines/<machine fingerprint>/<NAME>/, and the fingerprint itself."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.errors import RecordError, UsageError
from bench.machine import slug
from bench.records.schema import Record
from bench.records.store import RECORDS_FILE, append, collect, latest

BASELINES = Path("results") / "baselines"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
META_FILE = "baseline.json"
# The framework packages whose versions make two machines' numbers different things.
VERSION_KEYS = ("tensorflow", "keras", "torch", "jax", "jaxlib", "flax", "optax", "python")


def machine_of(rec: Record) -> dict[str, Any]:
    """What a record's numbers depend on besides the code: CPU, CPU count, GPUs, framework versions."""
    env = rec.env or {}
    return {"cpu": env.get("cpu") or "unknown CPU", "cpus": env.get("cpus"), "gpus": list(env.get("gpus") or []),
            "versions": {k: v for k, v in sorted(rec.versions.items()) if k in VERSION_KEYS and v}}


def fingerprint(recs: Iterable[Record]) -> tuple[str, dict[str, Any]]:
    """A folder name (readable CPU/GPU slug + hash) and the description it stands for.

    Versions are merged over the records (each worker reports its own framework's), so one run
    of the three frameworks has one fingerprint; another CPU, GPU or framework version has another.
    """
    recs = list(recs)
    machines = {json.dumps({k: v for k, v in machine_of(r).items() if k != "versions"}, sort_keys=True) for r in recs}
    if len(machines) > 1:
        raise UsageError(f"these records come from {len(machines)} different machines; save one machine's "
                         "records per baseline")
    desc = json.loads(machines.pop()) if machines else {"cpu": "unknown CPU", "cpus": None, "gpus": []}
    versions: dict[str, set[str]] = {}
    for r in recs:
        for k, v in machine_of(r)["versions"].items():
            versions.setdefault(k, set()).add(str(v))
    desc["versions"] = {k: "/".join(sorted(v)) for k, v in sorted(versions.items())}
    digest = hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:8]
    gpu = f"-{slug(desc['gpus'][0])}" if desc["gpus"] else ""
    return f"{slug(desc['cpu'])}-{desc['cpus']}cpu{gpu}-{digest}", desc


def check_name(name: str) -> str:
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"baseline name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, e.g. smoke-cpu)")
    return name


def save(name: str, paths: list[Path], root: Path = BASELINES, force: bool = False) -> tuple[Path, int]:
    """Store the latest record of each cell of RESULTS as baseline NAME; returns (folder, records)."""
    check_name(name)
    recs, problems = collect(paths)
    if problems:
        raise RecordError(f"{problems[0]} — a baseline must be made from undamaged records; fix or drop that file")
    recs = latest(recs)
    if not any(r.status == "ok" for r in recs):
        raise RecordError(f"no ok records in {', '.join(map(str, paths))}: a baseline needs at least one cell that ran")
    folder, desc = fingerprint(recs)
    target = root / folder / name
    if target.exists() and not force:
        raise UsageError(f"baseline {name!r} already exists for this machine ({target}); pass --force to replace it")
    meta = {"name": name, "machine": desc, "fingerprint": folder, "records": len(recs),
            "tasks": sorted({r.task for r in recs}),
            "commits": sorted({str((r.env or {}).get("commit")) for r in recs}),
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "sources": [str(p) for p in paths]}
    try:
        (root / folder).mkdir(parents=True, exist_ok=True)
        # Built aside and renamed in: a crash never leaves a half baseline that compare would read.
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=root / folder))
        append(tmp / RECORDS_FILE, recs)
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except OSError as exc:
        raise UsageError(f"cannot write the baseline under {root} ({exc.strerror or exc}); check that folder") from None
    return target, len(recs)


def available(root: Path = BASELINES) -> list[dict[str, Any]]:
    """Every stored baseline's metadata (with its folder), sorted by name then machine."""
    out = []
    for meta_path in sorted(root.glob(f"*/*/{META_FILE}")):
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue  # a damaged baseline is invisible here; compare on its folder names the problem
        if isinstance(meta, dict):
            out.append({**meta, "path": meta_path.parent})
    return sorted(out, key=lambda m: (str(m.get("name")), str(m.get("fingerprint"))))


def resolve(arg: str, current: list[Record], root: Path = BASELINES) -> tuple[Path, str | None]:
    """BASELINE as given to compare: a path, or a baseline NAME -> (folder, warning or None).

    A name picks this machine's baseline (the current records' fingerprint); failing that, the only
    one of that name, with a warning that its times and memory come from another machine.
    """
    path = Path(arg)
    if path.exists() or not NAME_RE.fullmatch(arg):
        return path, None
    found = [m for m in available(root) if m.get("name") == arg]
    if not found:
        names = sorted({str(m.get("name")) for m in available(root)})
        hint = f"; stored baselines: {', '.join(names)}" if names else f"; none stored under {root} yet"
        raise UsageError(f"{arg}: no such file, folder or baseline name{hint} "
                         "(make one with: python -m bench baseline save NAME RESULTS)")
    mine, mine_desc = fingerprint(current) if current else (None, None)
    exact = [m for m in found if m.get("fingerprint") == mine]
    if exact:
        return Path(exact[0]["path"]), None
    hardware = ("cpu", "cpus", "gpus")
    same_hw = [m for m in found
               if mine_desc and all((m.get("machine") or {}).get(k) == mine_desc.get(k) for k in hardware)]
    pick = same_hw if same_hw else found
    if len(pick) > 1:
        raise UsageError(f"baseline {arg!r} exists for {len(found)} other machines or version sets "
                         f"({', '.join(str(m['fingerprint']) for m in found)}), none matching these records ({mine}); "
                         "pass the folder you mean")
    diff = differences(pick[0].get("machine") or {}, mine_desc or {})
    return Path(pick[0]["path"]), f"baseline {arg!r} differs from these records in: {diff}"


def differences(base: dict[str, Any], cur: dict[str, Any]) -> str:
    """'torch 2.4.0 -> 2.5.1, cpu X -> Y' for two machine descriptions; '' when the same."""
    out = []
    for key in ("cpu", "cpus", "gpus"):
        if base.get(key) != cur.get(key):
            out.append(f"{key} {base.get(key)} -> {cur.get(key)}")
    bv, cv = base.get("versions") or {}, cur.get("versions") or {}
    for k in sorted(set(bv) | set(cv)):
        if bv.get(k) != cv.get(k):
            out.append(f"{k} {bv.get(k, 'absent')} -> {cv.get(k, 'absent')}")
    return ", ".join(out)


def machine_difference(base: list[Record], cur: list[Record]) -> str:
    """How the machines (and framework versions) of two record sets differ; '' when they do not."""
    try:
        return differences(fingerprint(base)[1], fingerprint(cur)[1])
    except UsageError:  # a side from several machines: name them all
        def names(recs: list[Record]) -> list[str]:
            return sorted({f"{m['cpu']} ({m['cpus']} CPUs){', ' + ', '.join(m['gpus']) if m['gpus'] else ''}"
                           for m in map(machine_of, recs)})
        a, b = names(base), names(cur)
        return "" if a == b else f"baseline on {'; '.join(a)}, current on {'; '.join(b)}"

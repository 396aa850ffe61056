"""`bench ab`: the same cells under two sides on this machine, in interleaved rounds.

A side is a git revision of this project (checked out into a temporary worktree and run by this
interpreter, so only the code differs) or a mapping of frameworks to interpreters (the current code
under other framework builds). Each round runs both sides' own `bench run` once, A first in even
rounds and B first in odd ones, so a drift of the machine does not land on one side.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import records
from bench.errors import UsageError
from bench.files import write_atomic
from bench.records import Record

ROOT = Path(__file__).resolve().parents[2]  # the checkout this bench runs from


@dataclass(frozen=True)
class Side:
    name: str  # "A" or "B"
    text: str  # what the user wrote: a revision, or FW=EXE,...
    commit: str | None = None  # a revision side's full commit
    pythons: str = ""  # an interpreter side's FW=EXE,... for `bench run --python`
    env: tuple[tuple[str, str], ...] = ()  # extra environment of this side's runs

    def describe(self) -> str:
        what = f"{self.text} ({self.commit[:12]})" if self.commit else f"current code, {self.pythons}"
        return what + "".join(f" {k}={v}" for k, v in self.env)

    def same_as(self, other: Side) -> bool:
        return (self.commit, self.pythons, self.env) == (other.commit, other.pythons, other.env)


def git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=120)
    if done.returncode:
        raise UsageError(f"git {' '.join(args)}: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    return done.stdout.strip()


def env_items(items: list[str] | None) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not key.replace("_", "").isalnum():
            raise UsageError(f"--env-a/--env-b: {item!r} is not NAME=VALUE")
        out.append((key.strip(), value))
    return tuple(out)


def make_side(name: str, text: str | None, env: tuple[tuple[str, str], ...],
              check_pythons: Callable[[str], dict[str, str]]) -> Side:
    """A side from its text: 'FW=EXE,...' is an interpreter side (every interpreter must import its
    framework), anything else a git revision of this project."""
    if not text:
        raise UsageError(f"side {name} is missing: give two sides, e.g. bench ab HEAD~1 HEAD, or --a torch=EXE --b "
                         "torch=EXE")
    if "=" in text:
        mapping = check_pythons(text)
        for fw, exe in mapping.items():
            probe = subprocess.run([exe, "-c", f"import {fw if fw != 'tf' else 'tensorflow'}"], capture_output=True,
                                   text=True, timeout=300)
            if probe.returncode:
                last = (probe.stderr.strip().splitlines() or ["failed"])[-1]
                raise UsageError(f"side {name}: {exe} cannot import {fw} ({last[:120]}); install it there")
        # absolute, not resolved: a venv's python is a link that must keep its venv
        return Side(name, text, pythons=",".join(f"{fw}={os.path.abspath(exe)}" for fw, exe in mapping.items()),
                    env=env)
    if not (ROOT / ".git").exists():
        raise UsageError(f"side {name}: {text!r} is a git revision, but {ROOT} is not a git checkout of bench")
    try:
        commit = git("rev-parse", "--verify", "--quiet", f"{text}^{{commit}}")
    except UsageError:
        raise UsageError(f"side {name}: unknown revision {text!r} (git rev-parse found no commit)") from None
    return Side(name, text, commit=commit, env=env)


def check_clean(sides: tuple[Side, Side]) -> None:
    """A revision side runs committed code only: uncommitted changes would silently be left out of it."""
    if not any(s.commit for s in sides):
        return
    dirty = git("status", "--porcelain", "--untracked-files=no").splitlines()
    if dirty:
        what = f"{len(dirty)} file{'s' * (len(dirty) > 1)}, e.g. {dirty[0].split(maxsplit=1)[-1]}"
        raise UsageError(f"the working tree has uncommitted changes ({what}): a "
                         "revision side runs committed code only; commit or stash them first")


@contextlib.contextmanager
def checkouts(sides: tuple[Side, Side]) -> Iterator[dict[str, Path]]:
    """The code folder of each side: a temporary worktree per revision, this checkout for interpreter sides."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-ab-"))
    made: dict[str, Path] = {}
    try:
        for commit in sorted({s.commit for s in sides if s.commit}):
            made[commit] = tmp / commit[:12]
            git("worktree", "add", "--detach", "--quiet", str(made[commit]), commit)
        yield {s.name: made[s.commit] if s.commit else ROOT for s in sides}
    finally:
        for path in made.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True,
                           timeout=120)
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class ABConfig:
    sides: tuple[Side, Side]
    rounds: int
    run_args: tuple[str, ...]  # `bench run` options both sides get (tasks, frameworks, profile, ...)
    seed: int
    out: Path
    run_id: str
    def __post_init__(self) -> None:
        if self.rounds < 2:
            raise UsageError(f"--rounds {self.rounds}: a paired comparison needs at least 2 rounds")

    def save(self) -> None:
        meta = {"run_id": self.run_id, "rounds": self.rounds, "seed": self.seed, "run_args": list(self.run_args),
                "sides": {s.name: asdict(s) | {"described": s.describe()} for s in self.sides}}
        write_atomic(self.out / "ab.json", json.dumps(meta, indent=2) + "\n")


def order(round_: int, sides: tuple[Side, Side]) -> tuple[Side, Side]:
    return sides if round_ % 2 == 0 else (sides[1], sides[0])


class SideFailed(UsageError):
    """A side's `bench run` could not start at all (e.g. an option its revision does not know)."""


def run_side(cfg: ABConfig, side: Side, code: Path, round_: int) -> list[Record]:
    """One round of one side: its own `bench run` in its own folder; its records, tagged with side and round."""
    folder = cfg.out / "rounds" / f"{round_:02d}-{side.name}"
    cmd = [sys.executable, "-m", "bench", "run", *cfg.run_args, "--seed", str(cfg.seed + round_), "--repeats", "1",
           "--out", str(folder)] + (["--python", side.pythons] if side.pythons else [])
    env = os.environ | dict(side.env) | {"PYTHONPATH": os.pathsep.join(filter(None, [str(code),
                                                                                      os.environ.get("PYTHONPATH")]))}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "bench-run.log", "w") as log:
        rc = subprocess.run(cmd, cwd=code, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    recs, problems = records.read_file(folder / records.RECORDS_FILE) if (folder / records.RECORDS_FILE).exists() \
        else ([], [])
    if not recs:
        lines = (folder / "bench-run.log").read_text(errors="replace").strip().splitlines()
        raise SideFailed(f"side {side.name} ({side.describe()}) wrote no record in round {round_} (exit {rc}): "
                         f"{(lines or ['no output'])[-1][:200]}; its log: {folder / 'bench-run.log'}")
    return [replace(r, side=side.name, repeat=round_, run_id=cfg.run_id) for r in recs]


def run_rounds(cfg: ABConfig, code: dict[str, Path],
               on_side: Callable[[int, Side, list[Record]], None] | None = None) -> list[Record]:
    """Every round, both sides in alternating order; each side's records appended to out/records.jsonl at once."""
    done: list[Record] = []
    for k in range(cfg.rounds):
        for side in order(k, cfg.sides):
            recs = run_side(cfg, side, code[side.name], k)
            records.append(cfg.out / records.RECORDS_FILE, recs)
            done += recs
            if on_side:
                on_side(k, side, recs)
    return done

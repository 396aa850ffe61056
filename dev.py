#!/usr/bin/env python3
"""Set up what is missing, then run: `python3 dev.py bench [ARGS]` (the default benchmark) or
`python3 dev.py test [PYTEST ARGS]` (the test suite). Only the standard library is used here.

The first call makes .venv (or $BENCH_VENV) and installs torch first ($TORCH_SPEC, default
torch==2.13.0: the CPU wheel of the project's dev and CI machines; set TORCH_SPEC=torch for your
platform's build), then the project with its frameworks (and the test tools for `test`). Later
calls find the setup stamp and start at once; a changed pyproject.toml or TORCH_SPEC sets up again.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
COMMANDS = {"bench": ("all", ["-m", "bench", "run", "--profile", "smoke", "--device", "cpu"]),
            "test": ("all,test", ["-m", "pytest"]),
            "setup": ("all,test", None)}


def usage() -> int:
    print("usage: python3 dev.py bench [bench run options] | test [pytest options] | setup", file=sys.stderr)
    return 2


def python_of(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def setup(extras: str) -> Path:
    """The venv's interpreter, with torch, the project and `extras` installed (skipped when the stamp matches)."""
    env = Path(os.environ.get("BENCH_VENV", ROOT / ".venv"))
    torch_spec = os.environ.get("TORCH_SPEC", "torch==2.13.0")
    stamp = env / ".bench-setup"  # one line per set of extras installed from this pyproject and torch

    def key(extra: str) -> str:
        return hashlib.sha256(f"{(ROOT / 'pyproject.toml').read_bytes()!r}{torch_spec}{extra}".encode()).hexdigest()

    have = stamp.read_text().split() if stamp.exists() else []
    if key(extras) in have:
        return python_of(env)
    if not python_of(env).exists():
        print(f"dev.py: creating {env}", file=sys.stderr)
        venv.create(env, with_pip=True)
    py = str(python_of(env))
    pip = [py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    print(f"dev.py: installing {torch_spec}, then bench[{extras}] (the first time takes minutes)", file=sys.stderr)
    subprocess.run([*pip, torch_spec], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[{extras}]"], check=True)
    covered = [key(extras)] + ([key("all")] if extras.startswith("all,") else [])  # test's setup serves bench
    stamp.write_text("\n".join([*have, *covered]) + "\n")
    return python_of(env)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in COMMANDS:
        return usage()
    extras, command = COMMANDS[argv[0]]
    try:
        py = setup(extras)
    except subprocess.CalledProcessError as exc:
        print(f"dev.py: setup failed ({' '.join(map(str, exc.cmd[:6]))} ... exited {exc.returncode}); "
              "see pip's message above", file=sys.stderr)
        return 1
    if command is None:
        return 0
    return subprocess.run([str(py), *command, *argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)

"""The GitHub workflow: valid against GitHub's published workflow schema, its shell scripts parse, and
every bench command it runs is one this bench accepts (a renamed option would otherwise fail only on GitHub)."""
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench.cli.parser import build_parser
from bench.errors import UsageError

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "bench.yml"


FLOW = yaml.safe_load(WORKFLOW.read_text())


def steps():
    return [s for job in FLOW["jobs"].values() for s in job["steps"]]


def test_the_workflow_matches_githubs_schema():
    exe = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    done = subprocess.run([exe, "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_run_script_is_valid_bash():
    scripts = [s["run"] for s in steps() if "run" in s]
    assert len(scripts) >= 4
    for script in scripts:
        done = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert done.returncode == 0, f"{script}\n{done.stderr}"


def bench_commands():
    """Each `python -m bench ...` line of the scripts, continuation lines joined, the workflow's env values put
    in (other variables become x)."""
    out = []
    for s in steps():
        text = s.get("run", "").replace("\\\n", " ")
        for line in text.splitlines():
            m = re.search(r"python -m bench (.*?)(?:[<>|].*)?$", line)
            if m:
                words = re.sub(r'"?\$(\w+)"?', lambda v: str(FLOW["env"].get(v.group(1), "x")), m.group(1))
                out.append(shlex.split(words))
    return out


def test_the_pull_request_job_runs_bench_ab_against_the_base_commit():
    cmds = bench_commands()
    ab = [c for c in cmds if c[0] == "ab"]
    assert ab and ab[0][1:3] == ["x", "HEAD"] and "--format" in ab[0]  # BASE_SHA (a variable) vs HEAD, Markdown
    assert any(c[:2] == ["history", "export"] for c in cmds)


@pytest.mark.parametrize("cmd", bench_commands(), ids=lambda c: " ".join(c[:2]))
def test_every_bench_command_of_the_workflow_parses(cmd):
    try:
        build_parser().parse_args(cmd)
    except UsageError as exc:  # pragma: no cover - the message is the point
        pytest.fail(f"the workflow runs `bench {' '.join(cmd)}`, which this bench refuses: {exc}")

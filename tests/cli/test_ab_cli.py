"""`bench ab` end to end: two git revisions in worktrees, two real venvs with different numpy, and bad input.

The revision tests run in a clone of this checkout (bench ab looks up revisions in the checkout it runs
from), with one extra commit so that HEAD~1 and HEAD are two commits of the same code.
"""
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from bench.records import read_file
from tests.conftest import missing, needs

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["--task", "mnist_mlp", "--profile", "smoke", "--rounds", "2", "--timeout", "600"]


def bench(args, cwd, timeout=900, env=None):
    env = {**os.environ, "PYTHONPATH": str(cwd), **(env or {})}
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of this checkout's HEAD with one more commit (the same code)."""
    if not (ROOT / ".git").exists():
        missing("bench ab tests need a git checkout")
    path = tmp_path_factory.mktemp("ab") / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(path)], check=True, timeout=300)
    git = ["git", "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@t"]
    (path / "NOTE.txt").write_text("a commit that changes no code\n")
    subprocess.run([*git, "add", "NOTE.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "note"], check=True)
    return path


def sha(path, rev):
    return subprocess.run(["git", "-C", str(path), "rev-parse", rev], capture_output=True, text=True,
                          check=True).stdout.strip()


@needs("torch")
@needs("jax")
def test_two_revisions_run_interleaved_each_from_its_own_code(clone, tmp_path):
    out = tmp_path / "ab"
    done = bench(["ab", "HEAD~1", "HEAD", "--framework", "torch,jax", *SMOKE, "--format", "md", "--out", str(out)],
                 clone)
    assert done.returncode in (0, 1), done.stderr  # 1: two noisy rounds may cross a threshold (threshold only)
    assert "| mnist_mlp | jax | cpu | steady step ms |" in done.stdout and "thresholds alone decide" in done.stderr
    recs, problems = read_file(out / "records.jsonl")
    assert not problems and len(recs) == 2 * 2 * 2  # sides x rounds x frameworks
    assert {(r.side, r.repeat, r.framework) for r in recs} == {(s, k, f) for s in "AB" for k in (0, 1)
                                                                for f in ("torch", "jax")}
    assert all(r.status == "ok" and r.seed == r.repeat for r in recs)  # round k: seed 0 + k on both sides
    commits = {s: {r.env["commit"] for r in recs if r.side == s} for s in "AB"}
    assert commits == {"A": {sha(clone, "HEAD~1")[:12]}, "B": {sha(clone, "HEAD")[:12]}}  # each side's own code
    order = [p.name for p in sorted((out / "rounds").iterdir(), key=lambda p: (p / "records.jsonl").stat().st_mtime)]
    assert order == ["00-A", "00-B", "01-B", "01-A"]  # the order alternates per round
    meta = json.loads((out / "ab.json").read_text())
    assert meta["sides"]["A"]["commit"] == sha(clone, "HEAD~1") and meta["rounds"] == 2
    assert "| mnist_mlp | torch | cpu | steady step ms |" in (out / "ab.md").read_text()
    assert (out / "report.md").exists() and "torch · B" in (out / "report.md").read_text()
    assert "bench-ab-" not in subprocess.run(["git", "-C", str(clone), "worktree", "list"], capture_output=True,
                                             text=True).stdout  # the worktrees are gone


def _venv(path: Path, numpy: str | None) -> Path:
    """A real venv seeing this environment's packages through a .pth, with its own numpy if asked."""
    subprocess.run([sys.executable, "-m", "venv", str(path)], check=True, timeout=300)
    py = path / "bin" / "python"
    if numpy:
        done = subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", numpy],
                              capture_output=True, text=True, timeout=600)
        if done.returncode:
            missing(f"pip could not install {numpy} here: {done.stderr.strip().splitlines()[-1:]}")
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "zz_bench_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # after the venv's own
    return py


@needs("torch")
def test_two_interpreters_with_different_numpy(tmp_path):
    old, new = _venv(tmp_path / "old", "numpy==1.26.4"), _venv(tmp_path / "new", None)
    out = tmp_path / "ab"
    done = bench(["ab", "--a", f"torch={old}", "--b", f"torch={new}", "--framework", "torch", *SMOKE, "--out",
                  str(out)], ROOT)
    assert done.returncode in (0, 1), done.stderr
    recs, _ = read_file(out / "records.jsonl")
    assert len(recs) == 4 and all(r.status == "ok" for r in recs)
    numpy = {r.side: r.versions["numpy"] for r in recs}
    assert numpy["A"] == "1.26.4" and numpy["B"] != "1.26.4"
    assert {r.side: r.env["python_executable"] for r in recs} == {"A": str(old), "B": str(new)}


@needs("jax")
def test_cell_options_reach_both_sides_runs(tmp_path):
    """--devices, --warm-caches and --no-inference are bench run's options: every round's cells get them."""
    out = tmp_path / "ab"
    done = bench(["ab", "--a", f"jax={sys.executable}", "--b", f"jax={sys.executable}", "--framework", "jax", *SMOKE,
                  "--devices", "2", "--warm-caches", "--no-inference", "--out", str(out)], ROOT)
    assert done.returncode in (0, 1), done.stderr
    recs, _ = read_file(out / "records.jsonl")
    assert len(recs) == 4 and all(r.status == "ok" and r.devices == 2 and r.per_device_batch == 64 for r in recs)
    assert all(r.settings["compile_caches"].startswith("warm") and r.latency_b1_s is None for r in recs)
    assert "jax ×2" in (out / "ab.md").read_text()


def test_an_interpreter_without_the_framework_is_refused(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "bare")], check=True)
    bare = tmp_path / "bare" / "bin" / "python"
    done = bench(["ab", "--a", f"torch={sys.executable}", "--b", f"torch={bare}", *SMOKE, "--out",
                  str(tmp_path / "ab")], ROOT)
    assert done.returncode == 2 and "cannot import torch" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "ab").exists()


@pytest.mark.parametrize("args, words", [
    (["NO-SUCH-REV", "HEAD"], "unknown revision 'NO-SUCH-REV'"),
    (["HEAD"], "side B is missing"),
    (["HEAD", "HEAD", "--rounds", "1"], "--rounds"),
    (["HEAD", "--a", "HEAD~1", "--b", "HEAD"], "give each side once"),
    (["HEAD~1", "HEAD", "--python", f"torch={sys.executable}"], "belong to a side"),
    (["HEAD~1", "HEAD", "--threshold", "step=5"], "--threshold"),
    (["HEAD~1", "HEAD", "--env-b", "NOT A PAIR"], "NAME=VALUE"),
    (["HEAD~1", "HEAD", "--task", "nope"], "nope"),
    (["HEAD~1", "HEAD", "--devices", "3"], "does not divide"),
    (["HEAD~1", "HEAD", "--gpu", "-1"], "non-negative whole numbers"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(clone, tmp_path, args, words):
    out = tmp_path / "ab"
    done = bench(["ab", *args, "--out", str(out)], clone, timeout=300)
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_uncommitted_changes_refuse_a_revision_side(clone, tmp_path):
    readme = clone / "README.md"
    text = readme.read_text()
    readme.write_text(text + "\nan edit\n")
    try:
        done = bench(["ab", "HEAD~1", "HEAD", *SMOKE, "--out", str(tmp_path / "ab")], clone, timeout=300)
    finally:
        readme.write_text(text)
    assert done.returncode == 2 and "uncommitted changes" in done.stderr and "README.md" in done.stderr
    assert not (tmp_path / "ab").exists()

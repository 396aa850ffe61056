"""The command line as a user meets it: one-line errors with exit 2, and real runs through workers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import main
from tests.conftest import ROOT, has
from tests.procs import alive

ALL_FW = all(has(fw) for fw in ("tf", "torch", "jax"))


def bench(*args: str, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bench", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, **(env or {})})


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return str(path)


def slowed_torch(tmp_path: Path, seconds: float, use_exec: bool = True) -> str:
    """An interpreter for --python torch=...: the real worker, with a sleep added to every torch training
    step. use_exec=False keeps the shell as the worker's parent (a wrapper script that does not exec)."""
    (tmp_path / "slow_worker.py").write_text(
        "import runpy, sys, time\n"
        "import impls.torch.adapter as a\n"
        "def slowed(step):\n"
        "    def slow(self, *args):\n"
        f"        open({str(tmp_path / 'stepping')!r}, 'w').close()  # tells the test that training has begun\n"
        f"        time.sleep({seconds})\n"
        "        return step(self, *args)\n"
        "    return slow\n"
        "a.Adapter.train_step = slowed(a.Adapter.train_step)\n"
        "a.Adapter.train_step_at = slowed(a.Adapter.train_step_at)  # the device-resident path (MNIST)\n"
        "sys.argv = ['bench.harness.worker'] + sys.argv[3:]  # drop '-m bench.worker' given by the runner\n"
        "runpy.run_module('bench.harness.worker', run_name='__main__')\n")
    command = f'{sys.executable} {tmp_path / "slow_worker.py"} "$@"'
    return script(tmp_path, "slow-python", ("exec " if use_exec else "") + command)


BAD_RUN_ARGS = [
    (["--task", "foo"], "unknown task 'foo'; choose from mnist_mlp, mnist_cnn, cats_vs_dogs or all"),
    (["--task", ","], "empty name"),
    (["--task", ""], "empty name"),
    (["--framework", "mxnet"], "unknown framework 'mxnet'; choose from tf, torch, jax"),
    (["--framework", "tf,,jax"], "empty name"),
    (["--device", "tpu"], "unknown device 'tpu'; choose from cpu, gpu"),
    (["--profile", "huge"], "unknown profile 'huge'"),
    (["--dataset", "cifar10"], "unknown dataset 'cifar10'"),
    (["--epochs", "0"], "0 is outside 1..10000"),
    (["--epochs", "-3"], "-3 is outside"),
    (["--epochs", "abc"], "'abc' is not a whole number"),
    (["--epochs", "99999999999"], "outside"),
    (["--seed", "-1"], "outside"),
    (["--timeout", "0"], "positive"),
    (["--timeout", "nan"], "positive"),
    (["--python", "torch=/nonexistent/python3"], "interpreter for torch not found"),
    (["--python", "caffe=/usr/bin/python3"], "is not FRAMEWORK=INTERPRETER"),
    (["--bogus"], "unrecognized arguments"),
]


@pytest.mark.parametrize("args,message", BAD_RUN_ARGS, ids=[" ".join(a) for a, _ in BAD_RUN_ARGS])
def test_bad_run_input_is_one_clear_line_and_exit_2(args, message, capsys, tmp_path):
    assert_bad_run(args, message, capsys, tmp_path)


def assert_bad_run(args: list[str], message: str, capsys, tmp_path: Path) -> None:
    """`bench run ARGS` exits 2 with one line containing `message`, no traceback, and writes nothing."""
    out = tmp_path / "out"
    assert main(["run", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()  # nothing written half-way


def test_other_bad_inputs(capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("not a folder")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    cases = [
        (["run", "--data-root", str(a_file), "--out", str(tmp_path / "o")], "is a file"),
        (["run", "--out", str(a_file / "sub")], "cannot write to"),
        (["report", str(tmp_path / "missing")], "no such file or folder"),
        (["report", str(empty)], "no readable records"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
        (["verify", "--task", "nope"], "unknown task"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (args, err)


def test_missing_data_offline_is_one_error_before_any_cell(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    out = tmp_path / "out"
    assert main(["run", "--profile", "quick", "--data-root", str(tmp_path / "nodata"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "train-images-idx3-ubyte.gz" in err and str(tmp_path / "nodata" / "mnist") in err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_corrupt_local_file_is_named(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    (tmp_path / "fashion_mnist").mkdir()
    (tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    assert main(["run", "--profile", "quick", "--dataset", "fashion_mnist", "--data-root", str(tmp_path),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "train-images-idx3-ubyte.gz" in err and "cannot decompress" in err


def test_list_names_tasks_and_frameworks():
    res = bench("list")
    assert res.returncode == 0
    for word in ("mnist_mlp", "669,706", "mnist_cnn", "34,826", "smoke", "tf", "torch", "jax"):
        assert word in res.stdout


@pytest.mark.slow
@pytest.mark.skipif(not ALL_FW, reason="needs tf, torch and jax installed")
def test_a_crashing_cell_is_recorded_as_failed_and_the_others_run(tmp_path):
    crash = script(tmp_path, "crashing-python", "kill -SEGV $$")
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "all", "--out", str(out), "--python", f"torch={crash}")
    assert res.returncode == 1, res.stderr
    lines = (out / "records.jsonl").read_text().splitlines()
    recs = {r["framework"]: r for r in map(json.loads, lines)}
    assert len(lines) == 3 and set(recs) == {"tf", "torch", "jax"}
    assert recs["torch"]["status"] == "failed" and "SIGSEGV" in recs["torch"]["error"]
    for fw in ("tf", "jax"):
        r = recs[fw]
        assert r["status"] == "ok" and r["test_accuracy"] > 0.74 and r["peak_host_rss_bytes"] > 50 * 2**20
        assert r["train_time_s"] > 0 and r["peak_device_bytes"] is None and r["env"]["cpu"]
    assert recs["tf"]["weights_digest"] == recs["jax"]["weights_digest"]
    assert recs["tf"]["data_fingerprint"] == recs["jax"]["data_fingerprint"]
    assert "failed" in res.stdout and "mnist_mlp" in res.stdout
    assert "SIGSEGV" in (out / "report.md").read_text()
    # The records re-render, and a damaged line is reported, not fatal.
    with open(out / "records.jsonl", "a") as fh:
        fh.write('{"task": "mnist_mlp", "fram')
    rep = bench("report", str(out), "--output", str(tmp_path / "again.md"))
    assert rep.returncode == 0 and "not valid JSON" in rep.stderr
    assert "| mnist_mlp | tf | ok |" in (tmp_path / "again.md").read_text()
    # --resume runs only the failed cell; the ok ones are kept, the report shows each cell's latest record.
    res = bench("run", "--task", "mnist_mlp", "--framework", "all", "--resume", str(out))
    assert res.returncode == 0, res.stderr
    assert "1 cells (2 already done, kept)" in res.stderr
    lines = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()
             if x.startswith('{"') and x.endswith("}")]
    assert [r["framework"] for r in lines[3:]] == ["torch"] and lines[3]["status"] == "ok"
    report = (out / "report.md").read_text()
    assert "| mnist_mlp | torch | ok |" in report and "SIGSEGV" not in report
    # `bench report` of the resumed folder shows the same: the retried cell replaced its failure.
    again = bench("report", str(out), "--output", str(tmp_path / "resumed.md"))
    assert again.returncode == 0, again.stderr
    rendered = (tmp_path / "resumed.md").read_text()
    assert "| mnist_mlp | torch | ok |" in rendered and "SIGSEGV" not in rendered and "(1/2)" not in rendered


@pytest.mark.slow
def test_a_hanging_cell_times_out_and_is_recorded(tmp_path):
    hang = script(tmp_path, "hanging-python", "sleep 60")
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--out", str(out),
                "--python", f"torch={hang}", "--timeout", "1.5", timeout=300)
    assert res.returncode == 1
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["status"] == "failed" and rec["error"].startswith("timed out after 1.5 s")


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_gpu_without_gpu_is_a_skipped_cell_with_its_reason(tmp_path):
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--device", "gpu", "--out", str(out),
                env={"CUDA_VISIBLE_DEVICES": ""})
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["status"] == "skipped" and "no CUDA GPU" in rec["error"]
    assert res.returncode == 1 and "no cell ran" in res.stderr


@pytest.mark.slow
@pytest.mark.skipif(not ALL_FW, reason="needs tf, torch and jax installed")
def test_verify_command_compares_every_pair_for_both_mnist_tasks(tmp_path):
    res = bench("verify", "--task", "mnist_mlp,mnist_cnn", "--out", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "6 framework pairs agree" in res.stderr
    for pair in ("tf vs torch", "tf vs jax", "torch vs jax"):
        assert pair in res.stdout


@pytest.mark.parametrize("break_it,message", [
    (lambda base: [f.unlink() for f in (base / "val" / "dog").iterdir()], "empty class folder"),
    (lambda base: (base / "val" / "dog").rename(base / "val" / "bird"), "different class folders"),
])
def test_broken_photo_folder_is_one_error_before_any_cell(capsys, tmp_path, monkeypatch, break_it, message):
    from tests.unit.test_images import make_folder

    monkeypatch.setenv("BENCH_OFFLINE", "1")
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    break_it(make_folder(tmp_path / "data", n=2))
    out = tmp_path / "out"
    assert main(["run", "--task", "cats_vs_dogs", "--data-root", str(tmp_path / "data"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and not out.exists()


def test_resume_needs_a_run_folder_of_the_same_spec(capsys, tmp_path):
    assert main(["run", "--task", "mnist_mlp", "--resume", str(tmp_path / "none")]) == 2
    assert "no records.jsonl there" in capsys.readouterr().err
    from bench import records
    from bench.spec import TASKS, spec_hash

    rec = records.Record(task="mnist_mlp", framework="tf", device="cpu", profile="smoke", dataset="mnist", seed=0,
                         status="ok", spec_hash="0" * 16, epochs=2)
    records.append(tmp_path / "records.jsonl", [rec])
    assert spec_hash(TASKS["mnist_mlp"]) != "0" * 16
    assert main(["run", "--task", "mnist_mlp", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "another version of the spec" in err and len(err.strip().splitlines()) == 1
    assert main(["run", "--resume", str(tmp_path), "--out", str(tmp_path / "elsewhere")]) == 2
    assert "leave out --out" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(not (has("torch") and has("jax")), reason="needs torch and jax")
def test_ctrl_c_keeps_what_ran_and_resume_finishes_the_run(tmp_path):
    import signal
    import time

    hang = script(tmp_path, "hanging-python", "sleep 600")  # still running whenever the Ctrl-C comes
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--task", "mnist_mlp", "--framework", "torch,jax",
                             "--out", str(out), "--python", f"torch={hang}"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            # a shell without job control starts background jobs with SIGINT ignored, and
                            # Python keeps an inherited SIG_IGN: Ctrl-C would never reach it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300  # margin for a loaded 2-core machine (it failed once at 60 s)
    while not (out / "cells" / "mnist_mlp_torch_cpu_s0.json").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)  # the hanging worker is running now
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert "1 not run" in err and f"--resume {out}" in err and "Traceback" not in err
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["framework"] == "torch" and rec["status"] == "failed" and "interrupted" in rec["error"]
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch,jax", "--resume", str(out))
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert [(r["framework"], r["status"]) for r in recs] == [("torch", "failed"), ("torch", "ok"), ("jax", "ok")]


@pytest.mark.slow
@pytest.mark.skipif(not (has("torch") and has("jax")), reason="needs torch and jax")
def test_out_of_memory_and_killed_workers_are_failed_cells_with_their_reason(tmp_path):
    # A real memory limit on the torch worker (address space 500 MiB: torch cannot even map its
    # libraries), a SIGKILL like the OOM killer's on the second run; jax runs normally both times.
    limited = script(tmp_path, "limited-python", f"ulimit -v 500000\nexec {sys.executable} \"$@\"")
    killed = script(tmp_path, "killed-python", "kill -KILL $$")
    # Under the limit torch either raises (the worker names its 488 MiB address-space limit) or aborts
    # in C++ with std::bad_alloc (the runner reads that from the log): both must say "out of memory".
    for python, reason in ((limited, "out of memory"), (killed, "OOM killer sends SIGKILL")):
        out = tmp_path / ("run-" + python.rsplit("/", 1)[1])
        res = bench("run", "--task", "mnist_mlp", "--framework", "torch,jax", "--out", str(out),
                    "--python", f"torch={python}")
        assert res.returncode == 1 and "Traceback" not in res.stderr
        recs = {r["framework"]: r for r in map(json.loads, (out / "records.jsonl").read_text().splitlines())}
        assert recs["torch"]["status"] == "failed" and recs["jax"]["status"] == "ok"
        assert reason in recs["torch"]["error"], recs["torch"]["error"]


@pytest.mark.slow
def test_an_interpreter_without_bench_dependencies_is_named_with_the_fix(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)  # no numpy there
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--out", str(out),
                "--python", f"torch={bare / 'bin' / 'python'}")
    assert res.returncode == 1 and "Traceback" not in res.stderr
    rec = json.loads((out / "records.jsonl").read_text())
    assert rec["status"] == "failed" and "lacks numpy" in rec["error"] and "pip install -e" in rec["error"]


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_compare_flags_a_real_run_made_slower_on_purpose(tmp_path):
    slow = slowed_torch(tmp_path, 0.05)
    base, cur = tmp_path / "base", tmp_path / "cur"
    hist, bl = tmp_path / "history", tmp_path / "baselines"
    for out, extra in ((base, []), (cur, ["--python", f"torch={slow}"])):
        res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--out", str(out), "--history", str(hist),
                    *extra)
        assert res.returncode == 0, res.stderr
    (hfile,) = hist.glob("*.jsonl")  # both runs on this machine's one history file
    assert len(hfile.read_text().splitlines()) == 2
    assert bench("baseline", "save", "smoke-cpu", str(base), "--dir", str(bl)).returncode == 0
    res = bench("compare", "smoke-cpu", str(cur), "--baselines", str(bl), "--format", "md")
    assert res.returncode == 1, res.stdout + res.stderr
    time_row = next(line for line in res.stdout.splitlines() if "| time |" in line)
    assert "**worse**" in time_row
    assert "| accuracy |" in res.stdout and "regression" in res.stderr
    same = bench("compare", str(base), str(base))
    assert same.returncode == 0 and "no regression" in same.stderr


@pytest.mark.slow
@pytest.mark.skipif(not has("torch"), reason="needs torch")
def test_repeats_are_independent_seeded_runs_shown_with_ci_and_cv(tmp_path, capsys):
    assert main(["run", "--seed", str(2**32 - 2), "--repeats", "3", "--out", str(tmp_path / "x")]) == 2
    assert "past the largest seed" in capsys.readouterr().err and not (tmp_path / "x").exists()
    out = tmp_path / "run"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--repeats", "3", "--seed", "5",
                "--out", str(out))
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in recs] == [5, 6, 7] and all(r["status"] == "ok" for r in recs)
    assert len({r["weights_digest"] for r in recs}) == 3  # each repeat starts from its own seed's weights
    row = next(line for line in (out / "report.md").read_text().splitlines() if line.startswith("| mnist_mlp | torch"))
    assert "ok (3/3)" in row and "CV" in row and "[" in row
    # --same-seed: the repeats share seed, weights, data order and dropout; only the repeat index differs.
    same = tmp_path / "same"
    res = bench("run", "--task", "mnist_mlp", "--framework", "torch", "--repeats", "2", "--same-seed", "--seed", "5",
                "--out", str(same))
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for x in (same / "records.jsonl").read_text().splitlines()]
    assert [(r["seed"], r["repeat"]) for r in recs] == [(5, 0), (5, 1)]
    assert len({r["weights_digest"] for r in recs}) == 1 and len(list((same / "weights").iterdir())) == 1
    # Same data, weights and dropout masks: the same training, loss for loss (only the clock differs).
    learned = [[{k: v for k, v in h.items() if not k.endswith("time_s")} for h in r["history"]] for r in recs]
    assert learned[0] == learned[1] and recs[0]["test_accuracy"] == recs[1]["test_accuracy"]
    assert "ok (2/2)" in (same / "report.md").read_text()
    assert bench("run", "--task", "mnist_mlp", "--framework", "torch", "--repeats", "2", "--same-seed", "--seed", "5",
                 "--resume", str(same)).returncode == 0  # both repeats are already done: nothing runs again
    assert len((same / "records.jsonl").read_text().splitlines()) == 2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir() or not has("torch"), reason="needs Linux /proc and torch")
@pytest.mark.parametrize("use_exec", [True, False], ids=["direct-child", "behind-a-wrapper"])
def test_a_worker_dies_with_its_killed_runner(tmp_path, use_exec):
    import signal
    import time

    slow = slowed_torch(tmp_path, 5.0, use_exec)  # 24 steps of 5 s: minutes of training left to orphan
    out = tmp_path / "run"
    runner = subprocess.Popen([sys.executable, "-m", "bench", "run", "--task", "mnist_mlp", "--framework", "torch",
                               "--out", str(out), "--python", f"torch={slow}"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = str(tmp_path / "slow_worker.py")
    deadline = time.monotonic() + 300
    while not (tmp_path / "stepping").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    # Training: its next progress line (which would fail on the runner's closed pipe) is a minute away.
    assert alive(marker) and (tmp_path / "stepping").exists(), "the worker never started training"
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=60)
    deadline = time.monotonic() + 30  # SIGKILL by the kernel is immediate; the watching thread polls each second
    while alive(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(marker)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the worker kept running after its runner was killed"

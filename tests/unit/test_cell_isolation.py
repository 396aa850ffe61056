"""Issue #15: each cell's private compile caches (or the user's with --warm-caches), one GPU per GPU cell,
and the frameworks' order rotating per repeat."""
import dataclasses
import os
import tempfile
from pathlib import Path

import pytest

from bench.cli.args import gpu_indices
from bench.cli.parser import build_parser
from bench.errors import UsageError
from bench.harness import caches
from bench.harness.cell import Cell
from bench.runner import RunConfig, plan
from bench.runner.isolation import worker_env

USER = {"PATH": "/bin", "TORCHINDUCTOR_CACHE_DIR": "/home/u/inductor", "TRITON_CACHE_DIR": "/home/u/triton",
        "CUDA_CACHE_PATH": "/home/u/nv", "JAX_COMPILATION_CACHE_DIR": "/home/u/jax",
        "TF_XLA_FLAGS": "--tf_xla_persistent_cache_directory=/home/u/tf --tf_xla_auto_jit=2"}


def cell(**kw) -> Cell:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=0,
                epochs=1, data_root="", weights_path="", threads=2)
    return Cell(**{**base, **kw})


def test_two_cells_get_distinct_fresh_private_caches_removed_after_the_cell():
    with caches.cell_folder(warm=False) as one, caches.cell_folder(warm=False) as two:
        a, b = worker_env(cell(), USER, caches=one), worker_env(cell(framework="jax"), USER, caches=two)
        for name in caches.FOLDERS:
            assert a[name] != b[name] and Path(a[name]).is_dir() and Path(b[name]).is_dir()
            assert a[name].startswith(one) and b[name].startswith(two)
        for env in (a, b):
            assert "JAX_COMPILATION_CACHE_DIR" not in env and env["JAX_ENABLE_COMPILATION_CACHE"] == "false"
            assert env["TF_XLA_FLAGS"] == "--tf_xla_auto_jit=2"  # the user's TF cache folder is gone, the rest kept
            assert env[caches.MODE_ENV] == "private"
    assert not Path(one).exists() and not Path(two).exists()


def test_warm_caches_pass_the_users_variables_through():
    with caches.cell_folder(warm=True) as folder:
        assert folder is None
        env = worker_env(cell(), USER, caches=folder)
    assert {k: env[k] for k in USER if k != "PATH"} == {k: v for k, v in USER.items() if k != "PATH"}
    assert env[caches.MODE_ENV] == "warm" and "JAX_ENABLE_COMPILATION_CACHE" not in env


def test_describe_says_which_caches_the_worker_has():
    assert caches.describe({caches.MODE_ENV: "warm"}) == "warm: the user's caches (--warm-caches)"
    private = caches.describe({caches.MODE_ENV: "private"})
    assert private.startswith("private, fresh per cell: TORCHINDUCTOR_CACHE_DIR, TRITON_CACHE_DIR, CUDA_CACHE_PATH")
    assert "JAX persistent cache off" in private
    assert caches.describe({}).startswith("unknown")


def test_cli_flags_parse_into_the_run_config(tmp_path):
    args = build_parser().parse_args(["run", "--warm-caches", "--gpu", "2,3", "--devices", "2"])
    assert args.warm_caches and gpu_indices(args.gpu) == (2, 3)
    assert not build_parser().parse_args(["run"]).warm_caches and build_parser().parse_args(["run"]).gpu is None
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("torch",), devices=("gpu",), out=tmp_path, gpus=(2, 3),
                    n_devices=2, warm_caches=True)
    assert cfg.gpu_indices() == (2, 3) and cfg.warm_caches


def test_a_gpu_cell_sees_the_first_devices_of_its_gpu_list_and_a_cpu_cell_none():
    assert worker_env(cell(device="gpu"), {})["CUDA_VISIBLE_DEVICES"] == "0"
    assert worker_env(cell(device="gpu"), {}, gpus=(3, 1))["CUDA_VISIBLE_DEVICES"] == "3"
    assert worker_env(cell(device="gpu", devices=2), {}, gpus=(3, 1))["CUDA_VISIBLE_DEVICES"] == "3,1"
    assert worker_env(cell(device="gpu", devices=2), {})["CUDA_VISIBLE_DEVICES"] == "0,1"  # not given: 0..N-1
    assert worker_env(cell(device="gpu"), {})["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"  # nvidia-smi's numbering
    # a SLURM job's own GPUs: the indices count within them
    assert worker_env(cell(device="gpu"), {"CUDA_VISIBLE_DEVICES": "4,6"}, gpus=(1,))["CUDA_VISIBLE_DEVICES"] == "6"
    with pytest.raises(UsageError, match="sees 2 GPUs"):
        worker_env(cell(device="gpu"), {"CUDA_VISIBLE_DEVICES": "4,6"}, gpus=(2,))
    assert worker_env(cell(), {"CUDA_VISIBLE_DEVICES": "0,1"}, gpus=(1,))["CUDA_VISIBLE_DEVICES"] == ""


def test_gpu_list_is_checked(tmp_path):
    cfg = dict(tasks=("mnist_mlp",), frameworks=("torch",), devices=("gpu",), out=tmp_path)
    assert RunConfig(**cfg, n_devices=2).gpu_indices() == (0, 1)
    assert RunConfig(**cfg, n_devices=2, gpus=(5, 2, 7)).gpu_indices() == (5, 2)
    with pytest.raises(UsageError, match="--devices 2 trains on 2 GPUs but --gpu names 1"):
        RunConfig(**cfg, n_devices=2, gpus=(1,))
    with pytest.raises(UsageError, match="add --device gpu"):
        RunConfig(**{**cfg, "devices": ("cpu",)}, gpus=(1,))
    for bad in ("-1", "a", "0,,1", "1.5", "0,0", " "):
        with pytest.raises(UsageError, match="--gpu"):
            gpu_indices(bad)


def test_each_framework_runs_first_once_in_three_repeats(tmp_path):
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("tf", "torch", "jax", "sklearn"), devices=("cpu",),
                    repeats=3, out=tmp_path)
    cells = plan(cfg)
    nets = [[c.framework for c in cells if c.repeat == r and c.framework != "sklearn"] for r in range(3)]
    assert nets == [["tf", "torch", "jax"], ["torch", "jax", "tf"], ["jax", "tf", "torch"]]
    assert [c.framework for c in cells if c.repeat == 0][-1] == "sklearn"  # baselines as before: after, once
    one = plan(dataclasses.replace(cfg, repeats=1, frameworks=("jax",)))
    assert [c.framework for c in one] == ["jax"]


def test_run_cell_removes_its_private_folder(tmp_path, monkeypatch):
    from bench.runner import execute

    seen = {}

    def fake(argv, env, c, cfg, log, on_event):
        seen.update(env)
        return execute.Outcome(error="stopped here")

    monkeypatch.setattr(execute, "_run_worker", fake)
    cfg = RunConfig(tasks=("mnist_mlp",), frameworks=("torch",), devices=("cpu",), out=tmp_path)
    execute.run_cell(plan(cfg)[0], cfg)
    folder = seen["TORCHINDUCTOR_CACHE_DIR"]
    assert seen[caches.MODE_ENV] == "private" and not os.path.exists(folder)
    assert Path(folder).parent.parent == Path(tempfile.gettempdir())  # a SLURM node's own temp dir there

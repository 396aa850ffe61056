"""Shared fixtures: framework availability, the development data beside the checkout, small helpers."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

# Set before any framework import (as the runner does for workers): CPU only, quiet, Keras on TF.
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
PACKAGES = {"tf": ("tensorflow", "keras"), "torch": ("torch",), "jax": ("jax", "flax", "optax")}


def has(fw: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in PACKAGES[fw])


def needs(fw: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not has(fw), reason=f"{fw} is not installed (pip install -e '.[{fw}]')")


FW_PARAMS = [pytest.param(fw, marks=[needs(fw), getattr(pytest.mark, fw)]) for fw in ("tf", "torch", "jax")]


@pytest.fixture
def shared_mnist() -> Path:
    folder = SHARED_DATA / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"development copy of full MNIST not found at {folder}")
    return folder


@pytest.fixture
def data_root_with_mnist(tmp_path: Path, shared_mnist: Path) -> Path:
    root = tmp_path / "data"
    root.mkdir()
    (root / "mnist").symlink_to(shared_mnist)
    return root

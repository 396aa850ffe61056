"""Shared fixtures: framework availability, the development data beside the checkout, small helpers."""
from __future__ import annotations

import http.server
import importlib.util
import os
import threading
import time
from pathlib import Path

import pytest

# Every test runs on CPU, by construction: GPUs are hidden before any framework import (as the runner
# does for CPU workers), so no test can depend on whether the machine has one. The `gpu` tests
# start their workers with the visibility the user had (GPU_ENV).
GPU_ENV = {k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "JAX_PLATFORMS")}
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["JAX_PLATFORMS"] = "cpu"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("BENCH_SHARED_DATA", ROOT.parent / "shared" / "data"))
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")  # apt-get install dataset-fashion-mnist
PACKAGES = {"tf": ("tensorflow", "keras"), "torch": ("torch",), "jax": ("jax", "flax", "optax")}
# CI sets this (.ci/run): a test that would skip because data, weights or the browser are missing fails.
REQUIRE_DATA = os.environ.get("BENCH_REQUIRE_DATA") == "1"


def missing(reason: str) -> None:
    """Skip for a missing input; with BENCH_REQUIRE_DATA=1 (CI) fail instead, so nothing is silently left out."""
    if REQUIRE_DATA:
        pytest.fail(f"{reason} (BENCH_REQUIRE_DATA=1: this run must have it)", pytrace=False)
    pytest.skip(reason)


def has(fw: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in PACKAGES[fw])


def needs(fw: str) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not has(fw), reason=f"{fw} is not installed (pip install -e '.[{fw}]')")


FW_PARAMS = [pytest.param(fw, marks=[needs(fw), getattr(pytest.mark, fw)]) for fw in ("tf", "torch", "jax")]


@pytest.fixture
def real_idx() -> tuple[str, Path]:
    """(dataset, folder) of a full real IDX dataset: the development copy of MNIST, else the
    Fashion-MNIST files of Debian's dataset-fashion-mnist (what .ci/run installs)."""
    for name, folder in (("mnist", SHARED_DATA / "mnist"), ("fashion_mnist", DEBIAN_FASHION_MNIST)):
        if (folder / "train-images-idx3-ubyte.gz").exists():
            return name, folder
    missing(f"no full IDX dataset: neither {SHARED_DATA / 'mnist'} nor {DEBIAN_FASHION_MNIST} "
            "(apt-get install dataset-fashion-mnist)")
    raise AssertionError  # unreachable: missing() skips or fails


@pytest.fixture
def data_root_with_idx(tmp_path: Path, real_idx: tuple[str, Path]) -> tuple[str, Path]:
    """(dataset, data root) with the real IDX dataset linked in under its own name."""
    name, folder = real_idx
    root = tmp_path / "data"
    root.mkdir()
    (root / name).symlink_to(folder)
    return name, root


class _Server:
    """A real HTTP server on 127.0.0.1 serving a dict of path -> bytes (404 otherwise); a value
    ("truncate", bytes) sends half the promised body and closes, ("stall", bytes) half and then waits."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the name http.server dispatches to
                body = files_.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                mode = None
                if isinstance(body, tuple):  # ("truncate" | "stall", bytes): a misbehaving server
                    mode, body = body
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if mode is None else body[: len(body) // 2])
                if mode == "stall":
                    self.wfile.flush()
                    time.sleep(3)  # longer than the test's download timeout

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    servers = []

    def start(files):
        servers.append(_Server(files))
        return servers[-1]

    yield start
    for s in servers:
        s.close()

"""Shared fixtures: framework availability, the development data beside the checkout, small helpers."""
from __future__ import annotations

import http.server
import importlib.util
import threading
import time
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


class _Server:
    """A real HTTP server on 127.0.0.1 serving a dict of path -> bytes (404 otherwise); a value
    ("truncate", bytes) sends half the promised body and closes, ("stall", bytes) half and then waits."""

    def __init__(self, files: dict[str, bytes]):
        files_ = files

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
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

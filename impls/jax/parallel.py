"""Data-parallel JAX: one jitted step over a 1-D device mesh ("data"); XLA inserts the gradient all-reduce.

The step is the single-device step: the loss is the mean over the global batch, so its gradient is the
global-batch gradient whatever the split. Only the shardings change: the batch is split along the mesh,
the model and optimizer state are replicated on every device (and stay so: out_shardings pins them).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.harness.adapter import DeviceUnavailable

AXIS = "data"


def data_mesh(device: str, n: int) -> Mesh:
    """The first n devices of the kind, as a 1-D mesh."""
    found = jax.devices({"cpu": "cpu", "gpu": "gpu"}[device])
    if len(found) < n:
        hint = (" (on the CPU, bench's runner sets XLA_FLAGS=--xla_force_host_platform_device_count=N before "
                "JAX starts)" if device == "cpu" else "")
        raise DeviceUnavailable(f"JAX sees {len(found)} {device.upper()} device(s), the cell asks for {n}{hint}")
    return Mesh(np.array(found[:n]), (AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def step_shardings(mesh: Mesh | None) -> dict[str, Any]:
    """jax.jit's shardings for step(states, x, y) -> (states, loss); none on one device."""
    if mesh is None:
        return {}
    batch = NamedSharding(mesh, PartitionSpec(AXIS))
    return {"in_shardings": (replicated(mesh), batch, batch), "out_shardings": replicated(mesh)}


def launcher_words(mesh: Mesh) -> str:
    kind = mesh.devices.flat[0].platform.upper()
    return (f"jax.jit over a 1-D mesh of {mesh.size} {kind} devices: batch NamedSharding(P('{AXIS}')), "
            "state replicated (XLA all-reduce)")

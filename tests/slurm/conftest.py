"""The local SLURM cluster (tests/slurm/cluster.py), once per session: skipped with the reason where this
machine cannot host it, a failure instead under BENCH_REQUIRE_SLURM=1 (CI)."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.slurm.cluster import LocalCluster, unavailable


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[LocalCluster]:
    why = unavailable()
    if why:
        if os.environ.get("BENCH_REQUIRE_SLURM") == "1":
            pytest.fail(f"{why} (BENCH_REQUIRE_SLURM=1: this run must have it)", pytrace=False)
        pytest.skip(why)
    with LocalCluster() as cluster:
        yield cluster

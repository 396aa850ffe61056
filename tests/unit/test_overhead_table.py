"""The harness-overhead benchmark's statistics and verdict (benchmarks/cases.py), without a framework."""
import numpy as np
import pytest

from benchmarks import cases


def row(task: str, pct: float, ci: tuple[float, float]) -> dict:
    return {"framework": "torch", "task": task, "harness_samples_per_s": 1000.0, "bare_samples_per_s": 1000.0,
            "overhead_pct": pct, "overhead_ci_pct": ci, "overhead_vs_ideal_pct": pct + 3, "rounds": 40}


@pytest.mark.parametrize(("rows", "verdict"), [
    ([row("a", 0.5, (-1.0, 1.5)), row("b", 1.9, (0.5, 3.0))], "met;"),
    ([row("a", 0.5, (-1.0, 1.5)), row("b", 2.6, (1.5, 3.9))], "not shown"),
    ([row("a", 0.5, (-1.0, 1.5)), row("b", 4.0, (2.5, 5.0))], "NOT met"),
])
def test_verdict_tells_a_miss_from_noise(monkeypatch, rows, verdict):
    monkeypatch.setattr(cases, "OVERHEAD_ROWS", rows)
    lines = cases.overhead_table()
    assert f"target <= 2 % overhead: {verdict}" in lines[-2]
    assert ("CI wholly above the target: torch-b" in lines[-2]) == (verdict == "NOT met")
    assert lines[1].split()[-5:-3] == ["[-1.00,", "+1.50]"]  # the CI column


def test_median_ci_brackets_the_median_and_narrows_with_more_rounds():
    rng = np.random.default_rng(1)
    few, many = 1.02 + 0.03 * rng.standard_normal(20), 1.02 + 0.03 * rng.standard_normal(320)
    lo_f, hi_f = cases.median_ci(few)
    lo_m, hi_m = cases.median_ci(many)
    assert lo_f <= np.median(few) <= hi_f and lo_m <= np.median(many) <= hi_m
    assert lo_m < 1.02 < hi_m
    assert (hi_m - lo_m) < (hi_f - lo_f) / 2  # ~1/sqrt(16) as wide
    assert cases.median_ci(few) == (lo_f, hi_f)  # seeded: the same rounds give the same interval

"""The A/B gate's statistics (bench/records/paired.py) on records with known effects and noise."""
import math
import random
import re

import pytest
from scipy.stats import binom

from bench.errors import UsageError
from bench.records import Record, paired

T = paired.parse_thresholds(None)


def rec(side: str, round_: int, **kw) -> Record:
    base = dict(task="mnist_mlp", framework="torch", device="cpu", profile="smoke", dataset="mnist", seed=round_,
                repeat=round_, epochs=2, status="ok", spec_hash="h", side=side, test_accuracy=0.95,
                steady_step_s=0.010, first_step_s=0.5, peak_host_rss_bytes=500 * 2**20)
    return Record(**{**base, **kw})


def ab(n: int, slow: float = 1.0, noise: float = 0.02, seed: int = 0, **b_kw) -> list[Record]:
    """n rounds; B's step time `slow` x A's; each side's time wobbles by a shared drift and its own noise."""
    rng = random.Random(seed)
    out = []
    for k in range(n):
        drift = 1 + rng.uniform(-0.1, 0.1)  # the machine's drift: both sides of a round share it
        out.append(rec("A", k, steady_step_s=0.010 * drift * (1 + rng.gauss(0, noise))))
        out.append(rec("B", k, steady_step_s=0.010 * slow * drift * (1 + rng.gauss(0, noise)), **b_kw))
    return out


def verdicts(recs, **th):
    rows, note = paired.gate(recs, {**T, **th})
    return {r.metric: r.mark for r in rows}, rows, note


def test_holm_matches_its_definition():
    assert paired.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert paired.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert paired.holm([0.9, 0.8]) == [1.0, 1.0]  # 2 x 0.8 capped at 1, and monotone after it


def test_the_sign_interval_has_its_stated_coverage():
    lo, hi, conf = paired.sign_interval(list(range(10)))
    assert (lo, hi) == (1, 8) and conf == pytest.approx(1 - 2 * binom.cdf(1, 10, 0.5)) and conf >= 0.95
    lo, hi, conf = paired.sign_interval([3.0, 1.0, 2.0])  # n < 6: the range, at 75 %
    assert (lo, hi, conf) == (1.0, 3.0, 0.75)


def test_the_smallest_p_decides_whether_the_test_can_speak():
    assert not paired.can_reach(4, 1)  # 1/16 > 0.05
    assert paired.can_reach(5, 1) and not paired.can_reach(6, 4) and paired.can_reach(7, 4)
    p = paired.p_worse([0.1] * 7, "up")  # all 7 rounds slower: the exact minimum
    assert p == pytest.approx(0.5**7)


def test_a_real_slowdown_is_worse_and_significant():
    marks, rows, note = verdicts(ab(10, slow=1.10))
    step = next(r for r in rows if r.metric == "step")
    assert marks["step"] == "worse" and step.p < paired.ALPHA
    est, lo, hi = map(float, re.findall(r"[-+][0-9.]+", step.effect))
    assert lo <= 10.0 <= hi and lo <= est <= hi and lo > 0  # the interval holds the true +10 % and not 0
    assert marks["first_step"] == marks["memory"] == marks["accuracy"] == "unchanged"
    assert "Holm" in note and "10 paired rounds, 4 tests" in note


def test_identical_sides_pass_and_a_faster_b_is_better():
    assert verdicts(ab(10, slow=1.0))[0]["step"] == "unchanged"
    assert verdicts(ab(10, slow=0.85))[0]["step"] == "better"


def test_a_large_but_inconsistent_change_is_not_significant():
    # B is 30 % slower in half of the rounds only: the median moves past the threshold, the signs do not agree
    recs = []
    for k in range(10):
        recs += [rec("A", k, steady_step_s=0.010), rec("B", k, steady_step_s=0.013 if k % 2 else 0.0095)]
    marks, rows, _ = verdicts(recs, step=1.0)
    assert marks["step"] == "not significant" and "Holm p=" in next(r for r in rows if r.metric == "step").detail


def test_too_few_rounds_fall_back_to_the_threshold_and_say_so():
    marks, rows, note = verdicts(ab(3, slow=1.20))
    assert marks["step"] == "worse" and "threshold only" in next(r for r in rows if r.metric == "step").detail
    assert "cannot reach" in note and "--rounds 7" in note


def test_holm_counts_every_cell_and_metric():
    # Three cells: 12 tests. At 7 rounds 2^-7 > 0.05/12, so the test cannot speak; at 9 it can.
    def cells(n):
        return [r.__class__(**{**r.__dict__, "framework": fw}) for fw in ("tf", "torch", "jax") for r in ab(n, 1.2)]
    assert "cannot reach" in verdicts(cells(7))[2]
    marks, rows, note = verdicts(cells(9))
    assert "9 paired rounds, 12 tests" in note
    assert {r.mark for r in rows if r.metric == "step"} == {"worse"}


def test_accuracy_is_a_difference_in_points():
    marks, rows, _ = verdicts(ab(10, test_accuracy=0.93))
    acc = next(r for r in rows if r.metric == "accuracy")
    assert acc.mark == "worse" and acc.effect.startswith("-2.00 pp") and acc.a == pytest.approx(95.0)


def test_failures_are_newly_failing_or_fixed_and_never_paired():
    recs = ab(6)
    broken = [r if r.side == "A" or r.repeat != 2 else rec("B", 2, status="failed", error="boom\nat line 3")
              for r in recs]
    rows, _ = paired.gate(broken, T)
    assert [(r.mark, r.detail) for r in rows] == [("newly failing", "B failed in 1 of 6 rounds: boom")]
    fixed = [r if r.side == "B" else rec("A", r.repeat, status="failed", error="x") for r in recs]
    assert [r.mark for r in paired.gate(fixed, T)[0]] == ["fixed"]


def test_rounds_pair_by_round_not_by_position():
    # B's records arrive in another order; a round with no B is left out, not paired with a neighbour
    recs = ab(8, slow=1.10)
    b = sorted((r for r in recs if r.side == "B" and r.repeat != 3), key=lambda r: -r.repeat)
    rows, _ = paired.gate([r for r in recs if r.side == "A"] + b, T)
    assert next(r for r in rows if r.metric == "step").n == 7


def test_thresholds_parse_and_bad_ones_are_usage_errors():
    assert paired.parse_thresholds("step=3%,accuracy=1pp")["step"] == 3.0
    for bad in ("step=3", "speed=3%", "accuracy=1%", "step=1pp", "step=-1%", "step=nan%"):
        with pytest.raises(UsageError):
            paired.parse_thresholds(bad)


def test_markdown_table_has_a_row_per_metric_and_bold_regressions():
    md = paired.markdown(paired.gate(ab(10, slow=1.2), T)[0])
    lines = md.strip().splitlines()
    assert len(lines) == 2 + 4 and "**worse**" in lines[2] and "steady step ms" in lines[2]
    assert all(line.count("|") == len(paired.COLUMNS) + 1 for line in lines)


def test_false_alarms_of_identical_noisy_sides_stay_rare():
    # 300 A/A trials of 10 rounds with 5 % noise: the gate should almost never fail
    alarms = sum(any(r.mark == "worse" for r in paired.gate(ab(10, noise=0.05, seed=s), T)[0]) for s in range(300))
    assert alarms / 300 <= 0.05
    hits = sum(any(r.mark == "worse" for r in paired.gate(ab(10, slow=1.10, noise=0.03, seed=s), T)[0])
               for s in range(100))
    assert hits / 100 >= 0.9
    assert math.isfinite(alarms)


def test_holm_keeps_a_one_in_twelve_result_from_failing_the_gate():
    # one cell of three is slower in 8 of 10 rounds (raw exact p = 33/1024); the other two are identical.
    # Raw, that would be `worse`; corrected for 12 tests it is not significant.
    logs = [0.05, 0.10, -0.12, 0.15, 0.20, -0.22, 0.25, 0.30, 0.35, 0.40]
    recs = []
    for fw in ("tf", "torch", "jax"):
        for k, d in enumerate(logs):
            b = 0.010 * math.exp(d) if fw == "torch" else 0.010
            recs += [rec("A", k, framework=fw, steady_step_s=0.010), rec("B", k, framework=fw, steady_step_s=b)]
    rows, note = paired.gate(recs, T)
    step = next(r for r in rows if r.metric == "step" and r.cell[1] == "torch")
    assert paired.p_worse(logs, "up") == pytest.approx(33 / 1024)  # raw: significant
    assert step.mark == "not significant" and step.p == pytest.approx(12 * 33 / 1024) and "12 tests" in note


def test_sides_alternate_their_order_every_round():
    from bench.runner import ab

    sides = (ab.Side("A", "x"), ab.Side("B", "y"))
    assert [tuple(s.name for s in ab.order(k, sides)) for k in range(4)] == [("A", "B"), ("B", "A")] * 2

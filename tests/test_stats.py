"""Scorecard statistics on hand-computed and constructed examples."""

import math

import numpy as np
import pytest

from safeserve_utils import stats


def _pairs(b01: int, b10: int, both: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [False] * b01 + [True] * b10 + [True] * both + [False] * neither
    b = [True] * b01 + [False] * b10 + [True] * both + [False] * neither
    return a, b


def test_mcnemar_by_hand():
    a, b = _pairs(b01=10, b10=2, both=5, neither=3)
    r = stats.mcnemar(a, b)
    # 2 * (C(12,0) + C(12,1) + C(12,2)) / 2^12 = 2 * 79 / 4096
    assert r["p"] == pytest.approx(2 * 79 / 4096, abs=1e-4) and r["p"] == pytest.approx(0.0386, abs=1e-4)
    assert (r["n"], r["a_only"], r["b_only"]) == (20, 2, 10)
    assert r["rate_a"] == pytest.approx(0.35) and r["rate_b"] == pytest.approx(0.75)
    assert r["diff"] == pytest.approx(0.40)
    # Wald for paired proportions: se = sqrt(12 - 8^2/20) / 20
    assert r["lo"] == pytest.approx(0.1093, abs=1e-4) and r["hi"] == pytest.approx(0.6907, abs=1e-4)
    swapped = stats.mcnemar(b, a)
    assert swapped["p"] == r["p"] and swapped["diff"] == pytest.approx(-0.40)


def test_mcnemar_without_discordant_pairs():
    a, b = _pairs(b01=0, b10=0, both=7, neither=4)
    r = stats.mcnemar(a, b)
    assert r["p"] == 1.0 and r["diff"] == 0 and r["lo"] == r["hi"] == 0
    same = stats.mcnemar([True, False, True], [True, False, True])
    assert same["diff"] == 0 and same["p"] == 1.0
    assert stats.mcnemar([False], [True])["p"] == 1.0  # one discordant pair: 2 * 0.5, capped
    with pytest.raises(ValueError):
        stats.mcnemar([True, False], [True])


def test_bootstrap_interval_of_a_rate_matches_wilson():
    flags = [1.0] * 60 + [0.0] * 140
    r = stats.bootstrap_interval(flags, n_boot=1000)
    assert r["value"] == pytest.approx(0.3) and r["n"] == 200
    assert r["lo"] < 0.3 < r["hi"]
    w_lo, w_hi = stats.wilson_interval(60, 200)
    assert abs((r["hi"] - r["lo"]) - (w_hi - w_lo)) < 0.03
    assert stats.bootstrap_interval(flags, n_boot=1000) == r
    other = stats.bootstrap_interval(flags, n_boot=1000, seed=1)
    assert (other["lo"], other["hi"]) != (r["lo"], r["hi"])


def test_bootstrap_interval_median_and_bad_input():
    r = stats.bootstrap_interval([1.0, 2.0, 3.0, 4.0, 100.0], stat="median", n_boot=200)
    assert r["value"] == 3.0 and 1.0 <= r["lo"] <= 3.0 <= r["hi"] <= 100.0
    with pytest.raises(ValueError, match="stat"):
        stats.bootstrap_interval([1.0, 2.0], stat="mode")
    with pytest.raises(ValueError, match="no values"):
        stats.bootstrap_interval([])
    with pytest.raises(ValueError, match="non-finite"):
        stats.bootstrap_interval([1.0, math.nan])


def test_mean_of_rates_weights_sets_equally():
    groups = {"small": [1] * 8 + [0] * 2, "large": [1] * 18 + [0] * 72}
    r = stats.bootstrap_mean_of_rates(groups, n_boot=500)
    assert r["value"] == pytest.approx(0.5)  # (0.8 + 0.2) / 2, while the pooled rate is 26 / 100
    assert (r["n"], r["sets"]) == (100, 2)
    assert r["lo"] < 0.5 < r["hi"] and r["hi"] - r["lo"] < 0.5
    assert stats.bootstrap_mean_of_rates(groups, n_boot=500) == r
    with pytest.raises(ValueError, match="'empty'"):
        stats.bootstrap_mean_of_rates({"small": [1, 0], "empty": []})
    with pytest.raises(ValueError):
        stats.bootstrap_mean_of_rates({})


def test_paired_bootstrap_constant_shift_and_no_change():
    a = np.random.default_rng(3).normal(size=40).tolist()
    shifted = stats.paired_bootstrap(a, [x + 1 for x in a], n_boot=500)
    assert shifted["diff"] == pytest.approx(1.0) and shifted["n"] == 40
    assert shifted["lo"] == pytest.approx(1.0) and shifted["hi"] == pytest.approx(1.0)
    assert shifted["hi"] - shifted["lo"] < 1e-9
    assert shifted["p"] <= 2 / 501
    same = stats.paired_bootstrap(a, a, n_boot=500)
    assert same["diff"] == 0 and same["p"] == 1.0 and same["lo"] == same["hi"] == 0
    median = stats.paired_bootstrap(a, [x + 1 for x in a], stat="median", n_boot=200)
    assert median["diff"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same prompts"):
        stats.paired_bootstrap([1.0, 2.0], [1.0])


def test_paired_bootstrap_sees_no_difference_in_noise():
    rng = np.random.default_rng(4)
    a = rng.normal(size=60)
    b = a + rng.normal(scale=0.01, size=60) - 0.0001
    r = stats.paired_bootstrap(a.tolist(), b.tolist(), n_boot=500)
    assert r["p"] > 0.05 and r["lo"] < 0 < r["hi"]


def test_paired_mean_of_rates_detects_a_real_improvement():
    noise = [i % 3 == 0 for i in range(30)]
    groups_a = {"set1": [False] * 50, "set2": noise}
    groups_b = {"set1": [True] * 40 + [False] * 10, "set2": noise}
    r = stats.paired_mean_of_rates(groups_a, groups_b, n_boot=500)
    assert r["diff"] == pytest.approx(0.4) and r["value_a"] == pytest.approx(5 / 30)
    assert (r["n"], r["sets"]) == (80, 2)
    assert r["p"] < 0.01 and r["lo"] > 0
    assert stats.verdict(r["diff"], r["p"]) == "safer"
    unchanged = stats.paired_mean_of_rates(groups_a, groups_a, n_boot=200)
    assert unchanged["diff"] == 0 and unchanged["p"] == 1.0


def test_paired_mean_of_rates_rejects_mismatched_sets():
    with pytest.raises(ValueError, match="set1"):
        stats.paired_mean_of_rates({"set1": [True] * 5}, {"set1": [True] * 4})
    with pytest.raises(ValueError, match="set2"):
        stats.paired_mean_of_rates({"set1": [True]}, {"set1": [True], "set2": [False]})


def test_holm():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert stats.holm([0.4, 0.9, 0.7]) == [1.0, 1.0, 1.0]
    assert stats.holm([]) == []
    pvalues = [0.2, 0.001, 0.04, 0.03, 0.5, 0.012]
    adjusted = stats.holm(pvalues)
    ranked = [adjusted[i] for i in np.argsort(pvalues)]
    assert ranked == sorted(ranked) and all(p <= q <= 1 for p, q in zip(pvalues, adjusted))


def test_verdict_words():
    assert stats.verdict(0.2, 0.01) == "safer"
    assert stats.verdict(-0.2, 0.01) == "less safe"
    assert stats.verdict(0.2, 0.2) == "no significant difference"
    assert stats.verdict(0.0, 0.0) == "no significant difference"
    assert stats.verdict(0.1, 0.04, alpha=0.01, higher="up", lower="down", same="flat") == "flat"
    assert stats.verdict(-0.1, 0.001, higher="up", lower="down", same="flat") == "down"

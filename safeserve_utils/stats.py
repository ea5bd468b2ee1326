"""Intervals and paired tests for the scorecard, so that no sentence claims more than the data show.

Every stage is evaluated on the same prompts, so a stage-vs-stage difference is tested *paired*
(McNemar for 0/1 outcomes, a paired bootstrap for rewards and ROUGE-L): pairing removes the
prompt-to-prompt variation that two independent intervals would count twice, and two overlapping
Wilson intervals can still hide a real difference. Averages over several evaluation sets weight
each set equally, as the paper's tables do, and are bootstrapped within each set (stratified), so
a large set does not swamp a small one. Many comparisons in one table get Holm-adjusted p-values,
and ``verdict`` turns a difference and its p-value into the only words a sentence may use.

Bootstraps are percentile intervals from ``numpy.random.default_rng(seed)``: the same inputs and
seed give the same numbers. Bootstrap p-values are two-sided, ``min(1, 2 * (1 + k) / (n_boot + 1))``
where ``k`` counts resampled differences at or beyond 0 on the side opposite the observed one (the
``+1`` keeps a finite bootstrap from reporting p = 0); an observed difference of exactly 0 gives p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

_STATS = {"mean": np.mean, "median": np.median}


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (well-behaved at 0%, 100% and small n)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def rate(flags: Sequence[bool]) -> dict[str, Any]:
    """Share of true flags with n and its 95% interval."""
    k, n = sum(bool(f) for f in flags), len(flags)
    lo, hi = wilson_interval(k, n)
    return {"rate": k / n if n else float("nan"), "lo": lo, "hi": hi, "n": n, "k": k}


def _array(name: str, values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"set {name!r} has no values")
    if not np.isfinite(x).all():
        raise ValueError(f"set {name!r} has non-finite values")
    return x


def _paired(name: str, a: Sequence[float], b: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x, y = _array(name, a), _array(name, b)
    if x.size != y.size:
        raise ValueError(f"set {name!r}: {x.size} values in a but {y.size} in b; pairs need the same prompts")
    return x, y


def _stratified(groups: dict[str, tuple[np.ndarray, ...]], stat: str, n_boot: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Point values and bootstrap draws of the mean over sets of ``stat`` for each paired array.

    Within each set one index matrix resamples prompts for all arrays at once (that is the pairing).
    Returns ``(point[j], draws[j, boot])`` for array position ``j``.
    """
    if stat not in _STATS:
        raise ValueError(f"stat must be one of {sorted(_STATS)}, not {stat!r}")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    fn = _STATS[stat]
    rng = np.random.default_rng(seed)
    width = len(next(iter(groups.values())))
    point, draws = np.zeros(width), np.zeros((width, n_boot))
    for arrays in groups.values():
        n = arrays[0].size
        idx = rng.integers(0, n, size=(n_boot, n))
        for j, x in enumerate(arrays):
            point[j] += fn(x)
            draws[j] += fn(x[idx], axis=1)
    return point / len(groups), draws / len(groups)


def _percentile(draws: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _boot_p(diff: float, draws: np.ndarray) -> float:
    """Two-sided bootstrap p-value of ``diff`` (see the module docstring for the convention)."""
    if diff == 0:
        return 1.0
    k = int(np.sum(draws <= 0)) if diff > 0 else int(np.sum(draws >= 0))
    return min(1.0, 2 * (1 + k) / (draws.size + 1))


def bootstrap_mean_of_rates(groups: dict[str, Sequence[float]], n_boot: int = 2000, seed: int = 0,
                            level: float = 0.95) -> dict[str, Any]:
    """Unweighted mean over sets of each set's mean, with a stratified percentile bootstrap interval."""
    if not groups:
        raise ValueError("no sets given")
    arrays = {name: (_array(name, values),) for name, values in groups.items()}
    point, draws = _stratified(arrays, "mean", n_boot, seed)
    lo, hi = _percentile(draws[0], level)
    return {"value": float(point[0]), "lo": lo, "hi": hi,
            "n": sum(x[0].size for x in arrays.values()), "sets": len(arrays)}


def bootstrap_interval(values: Sequence[float], stat: str = "mean", n_boot: int = 2000, seed: int = 0,
                       level: float = 0.95) -> dict[str, Any]:
    """``stat`` ("mean" or "median") of one set with a percentile bootstrap interval."""
    x = _array("values", values)
    point, draws = _stratified({"values": (x,)}, stat, n_boot, seed)
    lo, hi = _percentile(draws[0], level)
    return {"value": float(point[0]), "lo": lo, "hi": hi, "n": int(x.size)}


def mcnemar(a: Sequence[bool], b: Sequence[bool], z: float = 1.96) -> dict[str, Any]:
    """Exact two-sided McNemar test of two stages' 0/1 outcomes on the same prompts.

    ``p`` is the binomial test on the discordant pairs; ``lo``/``hi`` is the Wald interval of the
    paired difference ``rate_b - rate_a`` (deterministic; zero width when no pair is discordant).
    """
    if len(a) != len(b):
        raise ValueError(f"{len(a)} outcomes in a but {len(b)} in b; pairs need the same prompts")
    n = len(a)
    if n == 0:
        raise ValueError("no outcomes to compare")
    pairs = [(bool(x), bool(y)) for x, y in zip(a, b)]
    b10 = sum(x and not y for x, y in pairs)
    b01 = sum(y and not x for x, y in pairs)
    m = b01 + b10
    p = min(1.0, 2 * sum(math.comb(m, k) for k in range(min(b01, b10) + 1)) / 2**m) if m else 1.0
    diff = (b01 - b10) / n
    half = z * math.sqrt(max(0.0, m - (b01 - b10) ** 2 / n)) / n
    return {"n": n, "rate_a": sum(x for x, _ in pairs) / n, "rate_b": sum(y for _, y in pairs) / n,
            "diff": diff, "lo": max(-1.0, diff - half), "hi": min(1.0, diff + half),
            "a_only": b10, "b_only": b01, "p": p}


def paired_bootstrap(a: Sequence[float], b: Sequence[float], stat: str = "mean", n_boot: int = 2000,
                     seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """``stat(b) - stat(a)`` over paired values, resampling prompts jointly; percentile interval and p."""
    x, y = _paired("values", a, b)
    point, draws = _stratified({"values": (x, y)}, stat, n_boot, seed)
    diff, lo_hi = float(point[1] - point[0]), _percentile(draws[1] - draws[0], level)
    return {"n": int(x.size), "value_a": float(point[0]), "value_b": float(point[1]), "diff": diff,
            "lo": lo_hi[0], "hi": lo_hi[1], "p": _boot_p(diff, draws[1] - draws[0])}


def paired_mean_of_rates(groups_a: dict[str, Sequence[bool]], groups_b: dict[str, Sequence[bool]],
                         n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, Any]:
    """Difference of the mean-over-sets rate between two stages, by a stratified paired bootstrap."""
    if not groups_a:
        raise ValueError("no sets given")
    if set(groups_a) != set(groups_b):
        odd = sorted(set(groups_a) ^ set(groups_b))
        raise ValueError(f"sets {odd} are in only one of the two stages")
    arrays = {name: _paired(name, groups_a[name], groups_b[name]) for name in groups_a}
    point, draws = _stratified(arrays, "mean", n_boot, seed)
    diff, lo_hi = float(point[1] - point[0]), _percentile(draws[1] - draws[0], level)
    return {"n": sum(x.size for x, _ in arrays.values()), "sets": len(arrays),
            "value_a": float(point[0]), "value_b": float(point[1]), "diff": diff,
            "lo": lo_hi[0], "hi": lo_hi[1], "p": _boot_p(diff, draws[1] - draws[0])}


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order (monotone in p, capped at 1)."""
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def verdict(diff: float, p: float, alpha: float = 0.05, higher: str = "safer", lower: str = "less safe",
            same: str = "no significant difference") -> str:
    """The word a sentence may use: ``higher``/``lower`` only when the test rejects at ``alpha``."""
    if p < alpha and diff > 0:
        return higher
    if p < alpha and diff < 0:
        return lower
    return same

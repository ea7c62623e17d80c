"""Means and 95% confidence intervals over seeds (Student's t: a handful of seeds is not a large sample)."""
from __future__ import annotations

import math
from collections.abc import Sequence

# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom; the normal 1.96 beyond
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def t975(dof: int) -> float:
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% CI (nan with fewer than two values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t975(n - 1) * sd / math.sqrt(n)


def verdict(mean: float, ci: float, direction: int = 1) -> str:
    """``reproduced`` when the CI of the effect lies on the side the paper claims, ``not reproduced`` when it
    lies on the other side, ``inconclusive`` when it contains 0 (or cannot be computed)."""
    if math.isnan(mean) or math.isnan(ci):
        return "inconclusive"
    low, high = mean - ci, mean + ci
    if direction * low > 0 and direction * high > 0:
        return "reproduced"
    if direction * low < 0 and direction * high < 0:
        return "not reproduced"
    return "inconclusive"

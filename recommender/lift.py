"""The lift of one rate over another and its interval: the one computation behind the
effectiveness report (``recommender.effectiveness.lift_of``) and the off-policy evaluation's
arm comparison (``recommender.ope.relative_lift``).

For x_t successes in n_t trials against x_c in n_c (independent samples), p = x / n:

* lift = p_t / p_c - 1;
* its standard error by the delta method, se = (p_t / p_c) sqrt((1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c))
  (the same as sqrt(var_t / p_c^2 + p_t^2 var_c / p_c^4) with var = p (1 - p) / n);
* the interval: the delta method on the log of the ratio, log(p_t / p_c) +- z se_log with
  se_log = sqrt((1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c)), taken back (exp(.) - 1):
  ``statsmodels.stats.proportion.confint_proportions_2indep(method="log", compare="ratio")``.
  Acceptance rates are low and a control arm of a few percent has few successes: the linear
  interval lift +- z se would then reach below -100 %, this one stays above it, wider upwards,
  and covers the true lift at its level (tests/unit/test_ope.py).

The interval excludes 0 exactly when |log(p_t / p_c)| > z se_log, and se_log shrinks as
1 / sqrt(n): ``shows_needed`` is the arithmetic of that statistic. Defined when both arms have
a success (None otherwise). Pure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

LEVEL = 0.95
POWER = 0.80
Z_LEVEL = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2)  # 1.95996
Z_POWER = NormalDist().inv_cdf(POWER)  # 0.84162


@dataclass(frozen=True)
class LiftInterval:
    lift: float  # p_t / p_c - 1
    se: float  # of the lift, delta method
    se_log: float  # of log(p_t / p_c), delta method
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def shows_needed(self, shows: int, z_level: float = Z_LEVEL, z_power: float = Z_POWER) -> float | None:
        """Shows (of both arms, at the same split) at which, if the rates stay as observed, the
        interval excludes 0 with probability ``POWER``: ``shows`` x ((z_level + z_power) se_log /
        |log(p_t / p_c)|)^2. None when the rates are equal."""
        log_ratio = math.log1p(self.lift)
        if log_ratio == 0:
            return None
        return shows * ((z_level + z_power) * self.se_log / abs(log_ratio)) ** 2


def lift_interval(successes_t: int, shows_t: int, successes_c: int, shows_c: int,
                  level: float = LEVEL) -> LiftInterval | None:
    """The lift of treatment over control with its delta-method interval on the log scale (module
    docstring); None unless both arms have at least one success (and so one show)."""
    if successes_t <= 0 or successes_c <= 0 or shows_t <= 0 or shows_c <= 0:
        return None
    from statsmodels.stats.proportion import confint_proportions_2indep

    p_t, p_c = successes_t / shows_t, successes_c / shows_c
    ratio = p_t / p_c
    se_log = math.sqrt((1 - p_t) / successes_t + (1 - p_c) / successes_c)  # (1 - p) / (n p)
    low, high = confint_proportions_2indep(successes_t, shows_t, successes_c, shows_c, method="log",
                                           compare="ratio", alpha=1 - level)
    return LiftInterval(ratio - 1, ratio * se_log, se_log, float(low) - 1, float(high) - 1)

"""The effectiveness report: what the offers did, per arm, from the closed loop's live counters.

``effectiveness(rows, catalog)`` takes the counter rows of a date range (``LoopCountRow`` s, or
anything with their attributes: ``CountRow``) and returns an ``EffectivenessReport``: shows,
accepts, declines by reason, ignored offers, attributed conversions and those accepted at the
touchpoint, overall and by product, channel, value x satisfaction segment and model version, each
split by arm; the lift of treatment over control; the top decline reasons; a revenue proxy. Pure:
no I/O, no clock. ``nbo report``, ``GET /v1/reports/effectiveness`` and the loop bench call it.

The maths (per group; n = offers shown, x = conversions, p = x / n; t = treatment, c = control):

* conversion rate p, acceptance rate accepted / n, each with a 95 % Wilson interval
  (``statsmodels.stats.proportion.proportion_confint``);
* lift = (p_t - p_c) / p_c = p_t / p_c - 1, its standard error by the delta method (closed form:
  the variance of a ratio of independent proportions)

      se = (p_t / p_c) * sqrt((1 - p_t) / (n_t p_t) + (1 - p_c) / (n_c p_c))

  and the 95 % interval by the same method on the log of the ratio,
  (p_t / p_c) exp(+- 1.96 se_log) - 1 with se_log = se / (p_t / p_c)
  (``recommender.lift.lift_interval``, which ``recommender.ope.relative_lift`` uses too): it
  stays above -100 % with few control conversions. Defined when both arms have at least one
  conversion.
* verdict ``significant`` when the interval excludes 0, else ``not_yet`` with the shows still
  needed (``more_shows``) for 80 % power at a two-sided 5 % level, if the rates stay as observed
  and the treatment:control split stays as it is:

  - with the interval defined, the interval-width arithmetic of the same statistic: se_log
    shrinks as 1 / sqrt(n), so the interval excludes 0 with 80 % probability once
    n_needed = n * ((1.96 + 0.8416) * se_log / |log(p_t / p_c)|)^2 shows (n = n_t + n_c);
    more = n_needed - n (> 0 whenever the interval includes 0);
  - with an arm that has shows but no conversion yet (no interval), the power of the test of two
    proportions at the observed rates (``statsmodels.stats.power.NormalIndPower``, Cohen's h from
    ``proportion_effectsize``), and at least the shows at which the empty arm would expect 5
    conversions at the other arm's rate;
  - no figure (``more_shows`` None) when an arm has no shows, or both arms convert at the same
    rate (including none): the reason says which.

  The counts are per show, filed under the day of the showing: a conversion made up to
  ``NBO_LOOP__ATTRIBUTION_DAYS`` after it still lands on that day, so a range's last days grow.
* revenue proxy = conversions x the product's ``annual_value_minor`` (docs/CATALOG.md), in minor
  units of the bank's base currency (``NBO_MONEY__BASE_CURRENCY``); a product the catalog no
  longer holds counts 0 and is listed in ``unpriced``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from statistics import NormalDist
from typing import Any, Iterable, Mapping, Protocol

from domain.catalog import Catalog
from recommender.lift import lift_interval

TREATMENT = "treatment"
CONTROL = "control"
#: The breakdowns of the report, each a row attribute of ``CountRow``.
DIMENSIONS: tuple[str, ...] = ("product", "channel", "segment", "model_version")
#: The longest range one report covers (the ``LoopStatsReader`` port's limit).
MAX_REPORT_DAYS = 400
LEVEL = 0.95
POWER = 0.80
Z_LEVEL = NormalDist().inv_cdf(1 - (1 - LEVEL) / 2)  # 1.95996
Z_POWER = NormalDist().inv_cdf(POWER)  # 0.84162
#: An arm without a conversion yet: at least the shows at which it would expect this many.
MIN_EXPECTED_CONVERSIONS = 5
#: Decline reasons listed per group, the most frequent first.
TOP_REASONS = 3


class CountRow(Protocol):
    """One counter row (``adapters.ports.LoopCountRow``): a UTC day of showing, product, channel,
    vs segment, arm, model version and its counts."""

    day: date
    product_id: str
    channel: str
    segment: str
    arm: str
    model_version: str
    shows: int
    accepted: int
    declined: Mapping[str, int]
    ignored: int
    conversions: int
    conversions_accepted: int


def range_problem(day_from: date, day_to: date) -> str | None:
    """What is wrong with a report range (a sentence that says what to fix), or None."""
    if day_to < day_from:
        return f"to ({day_to}) is before from ({day_from}): give from <= to"
    days = (day_to - day_from).days + 1
    if days > MAX_REPORT_DAYS:
        return f"the range holds {days} days; a report covers at most {MAX_REPORT_DAYS}: narrow from/to"
    return None


@dataclass(frozen=True)
class Counts:
    """Counts of one cell (a group, or one arm of it). ``revenue_minor``: conversions x annual
    value, base-currency minor units."""

    shows: int = 0
    accepted: int = 0
    declined: Mapping[str, int] = field(default_factory=dict)
    ignored: int = 0
    conversions: int = 0
    conversions_accepted: int = 0
    revenue_minor: int = 0

    @property
    def declines(self) -> int:
        return sum(self.declined.values())

    @property
    def conversion_rate(self) -> float | None:
        """conversions / shows (None without shows)."""
        return self.conversions / self.shows if self.shows else None

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / shows (None without shows)."""
        return self.accepted / self.shows if self.shows else None

    def __add__(self, other: "Counts") -> "Counts":
        declined = dict(self.declined)
        for reason, n in other.declined.items():
            declined[reason] = declined.get(reason, 0) + n
        return Counts(self.shows + other.shows, self.accepted + other.accepted, declined,
                      self.ignored + other.ignored, self.conversions + other.conversions,
                      self.conversions_accepted + other.conversions_accepted,
                      self.revenue_minor + other.revenue_minor)

    def top_declines(self, n: int = TOP_REASONS) -> list[tuple[str, int]]:
        """The ``n`` most frequent decline reasons with their counts (ties: by reason)."""
        return sorted(((r, c) for r, c in self.declined.items() if c > 0), key=lambda rc: (-rc[1], rc[0]))[:n]

    def to_dict(self) -> dict[str, Any]:
        return {
            "shows": self.shows, "accepted": self.accepted, "declined": dict(sorted(self.declined.items())),
            "declines": self.declines, "ignored": self.ignored, "conversions": self.conversions,
            "conversions_accepted": self.conversions_accepted, "revenue_minor": self.revenue_minor,
            "conversion_rate": self.conversion_rate, "conversion_interval": rate_interval(self.conversions, self.shows),
            "acceptance_rate": self.acceptance_rate, "acceptance_interval": rate_interval(self.accepted, self.shows),
        }


def rate_interval(successes: int, trials: int) -> list[float] | None:
    """The 95 % Wilson interval [low, high] of successes / trials (None without trials)."""
    if trials <= 0:
        return None
    from statsmodels.stats.proportion import proportion_confint

    low, high = proportion_confint(successes, trials, alpha=1 - LEVEL, method="wilson")
    return [float(low), float(high)]


@dataclass(frozen=True)
class Lift:
    """Treatment against control for one rate (``measure``: ``conversion`` or ``acceptance``).

    ``verdict``: ``significant`` (the 95 % interval excludes 0) or ``not_yet``; with ``not_yet``,
    ``more_shows`` (shows of both arms together still needed, see the module's docstring) or None
    with ``reason``: ``no_treatment_shows``, ``no_control_shows``, ``no_difference`` (same rate in
    both arms, none included). ``reason`` is also ``no_control_successes`` /
    ``no_treatment_successes`` when an arm has shows but no success (``more_shows`` then from the
    power calculation, None when that asks for no more shows than there are). ``lift`` is None without a control success; ``standard_error``,
    ``low``, ``high`` are None without a success in each arm."""

    measure: str
    treatment_shows: int
    control_shows: int
    treatment_rate: float | None
    control_rate: float | None
    lift: float | None
    standard_error: float | None
    low: float | None
    high: float | None
    verdict: str
    reason: str | None
    more_shows: int | None

    @property
    def significant(self) -> bool:
        return self.verdict == "significant"

    @property
    def text(self) -> str:
        """The verdict in plain English (the report page has it in Chinese too)."""
        return verdict_text(self)

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "treatment_shows": self.treatment_shows, "control_shows": self.control_shows,
                "treatment_rate": self.treatment_rate, "control_rate": self.control_rate, "lift": self.lift,
                "standard_error": self.standard_error, "interval": None if self.low is None else [self.low, self.high],
                "level": LEVEL, "verdict": self.verdict, "reason": self.reason, "more_shows": self.more_shows,
                "more_shows_rounded": None if self.more_shows is None else rounded_up(self.more_shows),
                "text": self.text}


def lift_of(successes_t: int, shows_t: int, successes_c: int, shows_c: int, measure: str = "conversion") -> Lift:
    """The lift of treatment over control of successes / shows, its delta-method interval and the
    verdict (see the module's docstring)."""

    def lift(**fields: Any) -> Lift:
        base = dict(measure=measure, treatment_shows=shows_t, control_shows=shows_c, treatment_rate=p_t,
                    control_rate=p_c, lift=None, standard_error=None, low=None, high=None, verdict="not_yet",
                    reason=None, more_shows=None)
        return Lift(**(base | fields))

    p_t = successes_t / shows_t if shows_t else None
    p_c = successes_c / shows_c if shows_c else None
    if p_t is None:
        return lift(reason="no_treatment_shows")
    if p_c is None:
        return lift(reason="no_control_shows")
    n = shows_t + shows_c
    if successes_t == 0 and successes_c == 0:
        return lift(reason="no_difference")
    if successes_t == 0 or successes_c == 0:
        other_rate, empty_share = (p_t, shows_c / n) if successes_c == 0 else (p_c, shows_t / n)
        needed = max(_power_shows(p_t, p_c, shows_c / shows_t), MIN_EXPECTED_CONVERSIONS / other_rate / empty_share)
        return lift(lift=(p_t - p_c) / p_c if p_c > 0 else None,
                    reason="no_control_successes" if successes_c == 0 else "no_treatment_successes",
                    more_shows=math.ceil(needed - n) if needed > n else None)
    found = lift_interval(successes_t, shows_t, successes_c, shows_c, LEVEL)
    assert found is not None  # both arms have a success
    interval = dict(lift=found.lift, standard_error=found.se, low=found.low, high=found.high)
    if found.excludes_zero:
        return lift(**interval, verdict="significant")
    needed = found.shows_needed(n, Z_LEVEL, Z_POWER)
    if needed is None:
        return lift(**interval, reason="no_difference")
    return lift(**interval, more_shows=max(1, math.ceil(needed - n)))


def _power_shows(p_t: float, p_c: float, control_per_treatment: float) -> float:
    """Shows of both arms for a two-sided 5 % test of two proportions at ``p_t`` and ``p_c`` to
    have 80 % power, ``control_per_treatment`` control shows per treatment show."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    effect = abs(float(proportion_effectsize(p_t, p_c)))
    treatment = NormalIndPower().solve_power(effect_size=effect, alpha=1 - LEVEL, power=POWER,
                                             ratio=control_per_treatment, alternative="two-sided")
    return float(treatment) * (1 + control_per_treatment)


def rounded_up(n: int) -> int:
    """``n`` rounded up to two significant figures (15,470 -> 16,000; below 100 as it is): the
    "~N" of a verdict, which is an estimate."""
    if n < 100:
        return n
    scale = 10 ** (len(str(n)) - 2)
    return math.ceil(n / scale) * scale


def verdict_text(lift: Lift) -> str:
    what = "converts" if lift.measure == "conversion" else "is accepted"
    noun = "conversion" if lift.measure == "conversion" else "acceptance"
    if lift.verdict == "significant":
        assert lift.lift is not None and lift.low is not None and lift.high is not None
        direction = "better" if lift.lift > 0 else "worse"
        return (f"significant: treatment {what} {abs(lift.lift):.0%} {direction} than control "
                f"(95 % interval {lift.low:+.0%} to {lift.high:+.0%})")
    reasons = {
        "no_treatment_shows": "no treatment shows in this range",
        "no_control_shows": "no control shows in this range",
        "no_difference": "both arms at the same rate so far" if lift.treatment_rate else f"no {noun} in either arm yet",
        "no_control_successes": f"no {noun} in control yet; the interval needs one in each arm",
        "no_treatment_successes": f"no {noun} in treatment yet; the interval needs one in each arm",
    }
    if lift.more_shows is None:
        return f"not yet: {reasons.get(lift.reason or '', 'not enough data')}"
    return f"not yet: need ~{rounded_up(lift.more_shows):,} more shows"


@dataclass(frozen=True)
class Group:
    """One value of a breakdown (``key``; "all" for the whole range): counts per arm, the total,
    the lifts, and for a product its names (``label``: ``en``, ``zh``)."""

    key: str
    arms: Mapping[str, Counts]
    label: Mapping[str, str] | None = None

    @property
    def total(self) -> Counts:
        return sum(self.arms.values(), Counts())

    @property
    def treatment(self) -> Counts:
        return self.arms.get(TREATMENT, Counts())

    @property
    def control(self) -> Counts:
        return self.arms.get(CONTROL, Counts())

    @property
    def lift(self) -> Lift:
        """Conversion rate, treatment over control."""
        t, c = self.treatment, self.control
        return lift_of(t.conversions, t.shows, c.conversions, c.shows, "conversion")

    @property
    def acceptance_lift(self) -> Lift:
        t, c = self.treatment, self.control
        return lift_of(t.accepted, t.shows, c.accepted, c.shows, "acceptance")

    def to_dict(self) -> dict[str, Any]:
        total = self.total
        out: dict[str, Any] = {"key": self.key}
        if self.label is not None:
            out["label"] = dict(self.label)
        out |= {"total": total.to_dict(), "arms": {arm: counts.to_dict() for arm, counts in sorted(self.arms.items())},
                "lift": self.lift.to_dict(), "acceptance_lift": self.acceptance_lift.to_dict(),
                "top_declines": [{"reason": r, "count": n, "share": n / total.declines}
                                 for r, n in total.top_declines()]}
        return out


@dataclass(frozen=True)
class EffectivenessReport:
    """The report of the UTC days ``day_from`` to ``day_to`` (inclusive, the days the offers were
    shown). ``by[dimension]``: the groups of each of ``DIMENSIONS``, most shows first. Money in
    minor units of ``currency`` (exponent ``minor_unit_exponent``)."""

    day_from: date
    day_to: date
    currency: str
    minor_unit_exponent: int
    overall: Group
    by: Mapping[str, tuple[Group, ...]]
    unpriced: tuple[str, ...] = ()

    @property
    def lift(self) -> Lift:
        """The headline: the conversion rate's lift over all products and channels."""
        return self.overall.lift

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.day_from.isoformat(), "to": self.day_to.isoformat(),
                "currency": {"code": self.currency, "minor_unit_exponent": self.minor_unit_exponent},
                "overall": self.overall.to_dict(),
                "by": {d: [g.to_dict() for g in groups] for d, groups in self.by.items()},
                "unpriced": list(self.unpriced)}


def _key(row: CountRow, dimension: str) -> str:
    return str(row.product_id if dimension == "product" else getattr(row, dimension))


def effectiveness(rows: Iterable[CountRow], catalog: Catalog, day_from: date | None = None,
                  day_to: date | None = None, currency: str = "CNY", minor_unit_exponent: int = 2
                  ) -> EffectivenessReport:
    """The report over ``rows`` (the counters of ``day_from`` to ``day_to``; rows outside the range
    are left out; without a range, that of the rows, or today's epoch day 1970-01-01 for none).
    ``catalog`` prices the conversions (``annual_value_minor``) and names the products;
    ``currency`` / ``minor_unit_exponent``: the base currency the values are in."""
    rows = [r for r in rows if (day_from is None or r.day >= day_from) and (day_to is None or r.day <= day_to)]
    days = [r.day for r in rows]
    start = day_from or (min(days) if days else date(1970, 1, 1))
    end = day_to or (max(days) if days else start)
    overall: dict[str, Counts] = {}
    cells: dict[str, dict[str, dict[str, Counts]]] = {d: {} for d in DIMENSIONS}
    unpriced: set[str] = set()
    for row in rows:
        value = catalog.get(row.product_id).annual_value_minor if row.product_id in catalog else 0
        if row.product_id not in catalog and row.conversions:
            unpriced.add(row.product_id)
        counts = Counts(row.shows, row.accepted, dict(row.declined), row.ignored, row.conversions,
                        row.conversions_accepted, row.conversions * value)
        overall[row.arm] = overall.get(row.arm, Counts()) + counts
        for dimension in DIMENSIONS:
            arms = cells[dimension].setdefault(_key(row, dimension), {})
            arms[row.arm] = arms.get(row.arm, Counts()) + counts

    def label(dimension: str, key: str) -> Mapping[str, str] | None:
        if dimension != "product":
            return None
        if key not in catalog:
            return {"en": key, "zh": key}
        product = catalog.get(key)
        return {"en": product.name, "zh": product.name_zh}

    by = {}
    for dimension in DIMENSIONS:
        groups = [Group(key, arms, label(dimension, key)) for key, arms in cells[dimension].items()]
        by[dimension] = tuple(sorted(groups, key=lambda g: (-g.total.shows, g.key)))
    return EffectivenessReport(start, end, currency, minor_unit_exponent, Group("all", overall), by,
                               tuple(sorted(unpriced)))

"""The effectiveness report's numbers (``recommender.effectiveness``): the lift and its interval
against answers worked by hand, the verdict and the shows it still asks for, and the report of a
few counter rows by product, channel and arm, with the revenue proxy and the top declines."""

from __future__ import annotations

import json
import math
from datetime import date

import pytest

from adapters.ports import LoopCountRow
from adapters.redis_store import MAX_REPORT_DAYS as PORT_MAX_DAYS
from domain.catalog import load_catalog
from recommender.effectiveness import (
    MAX_REPORT_DAYS,
    Z_LEVEL,
    Z_POWER,
    _power_shows,
    effectiveness,
    lift_of,
    range_problem,
    rate_interval,
    rounded_up,
)

CATALOG = load_catalog()
DAY = date(2026, 5, 4)


def test_a_lift_worked_by_hand_is_significant_with_its_delta_method_interval():
    # 6 % of 10,000 treatment shows against 5 % of 10,000 control shows:
    # lift = 0.06 / 0.05 - 1 = 0.2; se = 1.2 * sqrt(0.94 / 600 + 0.95 / 500) = 0.0706541;
    # the interval on the log scale: 1.2 * exp(+-1.959964 * 0.0706541 / 1.2) - 1 = +6.9 % to +34.7 %
    lift = lift_of(600, 10_000, 500, 10_000)
    assert lift.lift == pytest.approx(0.2)
    assert lift.standard_error == pytest.approx(0.0706541, abs=1e-7)
    se_log = 0.0706541 / 1.2
    assert (lift.low, lift.high) == (pytest.approx(1.2 * math.exp(-1.959964 * se_log) - 1, abs=1e-6),
                                     pytest.approx(1.2 * math.exp(1.959964 * se_log) - 1, abs=1e-6))
    assert lift.verdict == "significant" and lift.more_shows is None
    assert lift.text == "significant: treatment converts 20% better than control (95 % interval +7% to +35%)"


def test_a_lift_whose_interval_holds_zero_says_how_many_more_shows_it_needs():
    # The same rates on a fifth of the shows: se = 1.2 * sqrt(0.94 / 120 + 0.95 / 100) = 0.157987,
    # se_log = sqrt(0.94 / 120 + 0.95 / 100) = 0.131656
    lift = lift_of(120, 2_000, 100, 2_000)
    assert lift.standard_error == pytest.approx(0.157987, abs=1e-6)
    assert lift.low < 0 < lift.high and lift.verdict == "not_yet"
    # 80 % power: 4,000 x ((1.959964 + 0.841621) x 0.131656 / log 1.2)^2 = 16,370.9 shows in all
    assert lift.more_shows == 12_371
    assert lift.text == "not yet: need ~13,000 more shows"
    # at that many shows, with the same rates and split, log(p_t / p_c) is 2.80 of its standard
    # errors from 0: the 95 % interval (the same statistic) then excludes 0 four times in five
    scale = (4_000 + lift.more_shows) / 4_000
    later = lift_of(round(120 * scale), round(2_000 * scale), round(100 * scale), round(2_000 * scale))
    assert math.log1p(later.lift) / (later.standard_error / (1 + later.lift)) == pytest.approx(Z_LEVEL + Z_POWER,
                                                                                                  abs=0.01)
    assert later.significant


def test_a_worse_treatment_is_significant_the_other_way():
    lift = lift_of(400, 10_000, 600, 10_000)
    assert lift.significant and lift.lift == pytest.approx(-1 / 3)
    assert lift.text.startswith("significant: treatment converts 33% worse than control")


def test_an_arm_without_conversions_has_no_interval_and_the_figure_comes_from_the_power_calculation():
    # No control conversion in 100 shows, 3 % of 1,000 in treatment: at least the shows at which
    # control would expect 5 conversions at 3 %: 5 / 0.03 / (100 / 1,100) = 1,833.3 in all
    lift = lift_of(30, 1_000, 0, 100)
    assert (lift.lift, lift.low, lift.reason) == (None, None, "no_control_successes")
    assert lift.more_shows == math.ceil(5 / 0.03 / (100 / 1_100) - 1_100) == 734
    assert lift.text == "not yet: need ~740 more shows"
    # with enough control shows that it should have converted, no figure: the interval needs a conversion
    assert lift_of(30, 1_000, 0, 1_000).text == (
        "not yet: no conversion in control yet; the interval needs one in each arm")


def test_the_power_calculation_is_the_textbook_one_for_two_proportions():
    # Cohen's h = 2 asin(sqrt(0.6)) - 2 asin(sqrt(0.5)); per arm 2 ((z_0.975 + z_0.8) / h)^2 (Cohen: 392 at h = 0.2)
    h = 2 * math.asin(math.sqrt(0.6)) - 2 * math.asin(math.sqrt(0.5))
    per_arm = 2 * ((1.959964 + 0.841621) / h) ** 2
    assert _power_shows(0.6, 0.5, 1.0) == pytest.approx(2 * per_arm, rel=1e-3)
    # a control of a quarter of the treatment's size: n_t (1 + 1/r) in place of 2 n_t, plus r n_t
    assert _power_shows(0.6, 0.5, 0.25) == pytest.approx(per_arm / 2 * (1 + 4) * 1.25, rel=1e-3)


@pytest.mark.parametrize("counts, reason, text", [
    ((5, 100, 0, 0), "no_control_shows", "not yet: no control shows in this range"),
    ((0, 0, 5, 100), "no_treatment_shows", "not yet: no treatment shows in this range"),
    ((0, 100, 0, 40), "no_difference", "not yet: no conversion in either arm yet"),
    ((10, 100, 4, 40), "no_difference", "not yet: both arms at the same rate so far"),
])
def test_without_an_estimate_the_verdict_says_why(counts, reason, text):
    lift = lift_of(*counts)
    assert (lift.verdict, lift.reason, lift.more_shows, lift.text) == ("not_yet", reason, None, text)


def test_the_acceptance_lift_speaks_of_acceptance():
    assert lift_of(300, 1_000, 10, 100, "acceptance").text.startswith("significant: treatment is accepted 200% better")
    assert lift_of(0, 1_000, 0, 100, "acceptance").text == "not yet: no acceptance in either arm yet"


def test_rounded_up_keeps_two_significant_figures():
    assert [rounded_up(n) for n in (7, 99, 100, 101, 734, 15_591, 1_000_001)] == [7, 99, 100, 110, 740, 16_000,
                                                                                 1_100_000]


def test_the_wilson_interval_of_a_rate_is_the_closed_form():
    # Wilson: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), p = 0.06, n = 10,000
    p, n, z = 0.06, 10_000, 1.959964
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low, high = rate_interval(600, 10_000)
    assert low == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-7)
    assert high == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-7)
    assert rate_interval(0, 0) is None


def test_a_range_must_be_ordered_and_within_the_ports_limit():
    assert MAX_REPORT_DAYS == PORT_MAX_DAYS
    assert range_problem(date(2026, 5, 1), date(2026, 5, 1)) is None
    assert range_problem(date(2026, 5, 2), date(2026, 5, 1)) == "to (2026-05-01) is before from (2026-05-02): give from <= to"
    assert "401 days" in range_problem(date(2025, 1, 1), date(2026, 2, 5))
    assert range_problem(date(2025, 1, 1), date(2026, 2, 4)) is None  # 400 days


def row(product: str, channel: str, arm: str, shows: int, conversions: int, day: date = DAY, **more) -> LoopCountRow:
    return LoopCountRow(day, product, channel, more.pop("segment", "D"), arm, more.pop("model", "v1"), shows=shows,
                        conversions=conversions, **more)


ROWS = [
    row("fund_sip", "teller", "treatment", 1_000, 60, accepted=90, declined={"too_expensive": 30, "bad_timing": 10},
        ignored=200, conversions_accepted=40),
    row("fund_sip", "mobile", "treatment", 500, 20, accepted=30, declined={"too_expensive": 5, "not_interested": 12},
        segment="A", model="v2"),
    row("fund_sip", "teller", "control", 300, 6, accepted=9, declined={"not_interested": 3}),
    row("large_cd", "teller", "treatment", 200, 4, declined={"has_it_elsewhere": 7}),
    row("large_cd", "call_centre", "control", 50, 1),
    row("retired_product", "teller", "treatment", 10, 2),
    row("fund_sip", "teller", "treatment", 999, 999, day=date(2026, 6, 1)),  # outside the range
]


def test_the_report_adds_up_rows_by_product_channel_and_arm():
    report = effectiveness(ROWS, CATALOG, date(2026, 5, 1), date(2026, 5, 31))
    overall = report.overall
    assert overall.treatment.shows == 1_710 and overall.control.shows == 350 and overall.total.shows == 2_060
    assert overall.total.conversions == 93 and overall.total.conversions_accepted == 40
    assert overall.total.declined == {"too_expensive": 35, "bad_timing": 10, "not_interested": 15,
                                      "has_it_elsewhere": 7}
    products = {g.key: g for g in report.by["product"]}
    assert [g.key for g in report.by["product"]] == ["fund_sip", "large_cd", "retired_product"]  # most shows first
    fund = products["fund_sip"]
    assert (fund.treatment.shows, fund.treatment.conversions, fund.control.shows, fund.control.conversions) == (
        1_500, 80, 300, 6)
    assert fund.lift.treatment_rate == pytest.approx(80 / 1_500) and fund.lift.control_rate == pytest.approx(0.02)
    assert fund.lift.lift == pytest.approx((80 / 1_500) / 0.02 - 1)
    assert fund.label == {"en": CATALOG.get("fund_sip").name, "zh": CATALOG.get("fund_sip").name_zh}
    channels = {g.key: g for g in report.by["channel"]}
    assert channels["teller"].total.shows == 1_510 and channels["mobile"].control.shows == 0
    assert channels["call_centre"].lift.reason == "no_treatment_shows"
    assert {g.key: g.total.shows for g in report.by["segment"]} == {"D": 1_560, "A": 500}
    assert {g.key: g.total.shows for g in report.by["model_version"]} == {"v1": 1_560, "v2": 500}


def test_the_revenue_proxy_is_conversions_times_annual_value_and_an_unknown_product_counts_zero():
    report = effectiveness(ROWS, CATALOG, date(2026, 5, 1), date(2026, 5, 31))
    value = {p: CATALOG.get(p).annual_value_minor for p in ("fund_sip", "large_cd")}
    products = {g.key: g for g in report.by["product"]}
    assert products["fund_sip"].total.revenue_minor == 86 * value["fund_sip"]
    assert products["fund_sip"].treatment.revenue_minor == 80 * value["fund_sip"]
    assert products["large_cd"].total.revenue_minor == 5 * value["large_cd"]
    assert products["retired_product"].total.revenue_minor == 0
    assert report.overall.total.revenue_minor == 86 * value["fund_sip"] + 5 * value["large_cd"]
    assert report.unpriced == ("retired_product",)
    assert products["retired_product"].label == {"en": "retired_product", "zh": "retired_product"}


def test_the_top_declines_of_a_product_are_its_most_frequent_reasons_with_their_shares():
    report = effectiveness(ROWS, CATALOG, date(2026, 5, 1), date(2026, 5, 31))
    fund = report.to_dict()["by"]["product"][0]
    assert fund["key"] == "fund_sip"
    assert fund["top_declines"] == [{"reason": "too_expensive", "count": 35, "share": 35 / 60},
                                    {"reason": "not_interested", "count": 15, "share": 15 / 60},
                                    {"reason": "bad_timing", "count": 10, "share": 10 / 60}]


def test_the_report_as_json_is_what_the_api_documents():
    from services.api.routes.reports import EffectivenessReport

    report = effectiveness(ROWS, CATALOG, date(2026, 5, 1), date(2026, 5, 31), "EUR", 2)
    body = json.loads(json.dumps(report.to_dict()))
    parsed = EffectivenessReport.model_validate(body)
    assert parsed.day_from == date(2026, 5, 1) and parsed.currency.code == "EUR"
    assert body["overall"]["lift"]["text"] == report.lift.text
    assert set(body["by"]) == {"product", "channel", "segment", "model_version"}


def test_no_rows_give_an_empty_report_with_nothing_claimed():
    report = effectiveness([], CATALOG, date(2026, 5, 1), date(2026, 5, 2))
    assert report.overall.total.shows == 0 and report.by["product"] == ()
    assert report.lift.text == "not yet: no treatment shows in this range"
    assert report.to_dict()["overall"]["total"]["conversion_rate"] is None


@pytest.mark.parametrize("counts", [(600, 10_000, 500, 10_000), (12, 1_000, 3, 500), (75, 9_000, 6, 1_100),
                                    (40, 4_000, 45, 4_000)])
def test_the_report_and_the_off_policy_lift_are_one_computation(counts):
    from recommender.ope import relative_lift

    report, ope = lift_of(*counts), relative_lift(*counts)
    assert (report.lift, report.standard_error, report.low, report.high) == pytest.approx(
        (ope.lift, ope.se, ope.low, ope.high), rel=1e-12)
    assert report.significant == (ope.low > 0 or ope.high < 0)

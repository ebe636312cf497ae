"""Known-answer tests of the decisioning chain: each rule, alone, on a customer where the right
answer is obvious."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from domain.catalog import Catalog, load_catalog
from decisioning import Policy, cooldown_days, decide, fallback
from decisioning.reasons import in_sentence
from decisioning.memo import Memo
from recommender.model import PriorModel, ScoredProducts
from domain.state import ContactRecord, CustomerState, Holding

CATALOG = load_catalog()
NOW_S = datetime(2026, 6, 1, 10, tzinfo=timezone.utc).timestamp()
DAY_S = 86_400


class FixedModel:
    """Scores one product far above the rest, so the chain's effect is visible."""

    version = "fixed"

    def __init__(self, favourite: str, boost_from: str | None = None, similar_weight: float = 1.0) -> None:
        self.product_ids = CATALOG.ids
        self.favourite = favourite
        self.boost_from = boost_from
        self.similar_weight = similar_weight

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        propensity = np.full(len(self.product_ids), 0.01)
        propensity[CATALOG.index[self.favourite]] = 0.9
        boost = np.zeros(len(self.product_ids))
        because = [None] * len(self.product_ids)
        if self.boost_from:
            i = CATALOG.index["fund_sip"]
            boost[i] = 2.0
            because[i] = self.boost_from
        return ScoredProducts(self.product_ids, propensity, boost, tuple(because),
                              propensity * (1 + self.similar_weight * boost))


def customer(**changes) -> CustomerState:
    state = CustomerState("C000000001", as_of_s=NOW_S - DAY_S, birth_year=1985, risk_tolerance=3,
                          employment="salaried", balance_minor=5_000_000)
    state.holdings = {"demand_deposit": Holding(1, NOW_S - 400 * DAY_S, NOW_S - 400 * DAY_S, 0.0)}
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def ids(decision) -> list[str]:
    return [o.product.product_id for o in decision.offers]


def test_the_most_likely_eligible_product_comes_first():
    decision = decide(customer(), FixedModel("credit_card_standard"), CATALOG, Policy(), "call_centre", NOW_S, 3)
    assert ids(decision)[0] == "credit_card_standard"
    assert decision.rules_applied == list(Policy().chain)


def test_a_held_single_hold_product_is_never_offered():
    state = customer()
    state.holdings["credit_card_standard"] = Holding(1, NOW_S, NOW_S, 0.0)
    decision = decide(state, FixedModel("credit_card_standard"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert "credit_card_standard" not in ids(decision)
    assert decision.excluded["credit_card_standard"] == "already_held"


def test_risk_above_the_customers_tolerance_is_excluded():
    decision = decide(customer(risk_tolerance=1), FixedModel("equity_fund"), CATALOG, Policy(), "mobile", NOW_S, 40)
    assert "equity_fund" not in ids(decision)
    assert decision.excluded["equity_fund"] == "risk_above_tolerance"


def test_a_premium_product_is_not_pitched_to_a_mass_customer():
    decision = decide(customer(), FixedModel("credit_card_platinum"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert "credit_card_platinum" not in ids(decision)
    assert decision.excluded["credit_card_platinum"] == "tier_fit"


def test_nor_a_basic_product_to_a_wealthy_customer():
    wealthy = customer(balance_minor=150_000_000, value_tier="high_net_worth")
    decision = decide(wealthy, FixedModel("credit_card_standard"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert "credit_card_standard" not in ids(decision)
    assert decision.excluded["credit_card_standard"] == "tier_fit"


def test_age_limits_apply():
    decision = decide(customer(birth_year=2026 - 75), FixedModel("mortgage"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert "mortgage" not in ids(decision)


@pytest.mark.parametrize("reason, days_later, offered", [
    ("bad_timing", 3, False), ("bad_timing", 10, True),
    ("not_interested", 10, False), ("has_it_elsewhere", 100, False),
])
def test_cool_down_after_a_decline_depends_on_the_reason(reason, days_later, offered):
    state = customer()
    state.contacts = {"credit_card_standard": ContactRecord(last_declined_at_s=NOW_S - days_later * DAY_S,
                                                            last_decline_reason=reason, declines=1)}
    decision = decide(state, FixedModel("credit_card_standard"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert ("credit_card_standard" in ids(decision)) is offered
    assert cooldown_days(CATALOG.get("credit_card_standard"), "bad_timing") < cooldown_days(
        CATALOG.get("credit_card_standard"), "not_interested")


def test_no_selling_during_an_open_complaint_but_a_service_action():
    decision = decide(customer(open_complaint=True), FixedModel("credit_card_standard"), CATALOG, Policy(),
                      "call_centre", NOW_S, 3)
    assert decision.offers == []
    assert decision.service_action == "resolve_complaint"


def test_daily_cap_per_channel_stops_offers():
    day = datetime.fromtimestamp(NOW_S, timezone.utc).strftime("%Y-%m-%d")
    state = customer(daily_contacts={f"{day}|teller": 2})
    assert decide(state, FixedModel("time_deposit_1y"), CATALOG, Policy(), "teller", NOW_S, 1).offers == []
    assert decide(state, FixedModel("time_deposit_1y"), CATALOG, Policy(), "mobile", NOW_S, 1).offers != []


def test_a_marketing_lever_reorders_without_code():
    plain = decide(customer(), FixedModel("credit_card_standard"), CATALOG, Policy(), "call_centre", NOW_S, 3)
    levered = decide(customer(), FixedModel("credit_card_standard"), CATALOG,
                     Policy(levers={"credit_card_standard": 0.001}), "call_centre", NOW_S, 3)
    assert ids(plain)[0] == "credit_card_standard" and ids(levered)[0] != "credit_card_standard"


def test_similar_after_purchase_is_explained_by_the_purchase():
    state = customer()
    state.holdings["bond_fund"] = Holding(1, NOW_S - 2 * DAY_S, NOW_S - 2 * DAY_S, 0.0)
    state.recent_purchases = [["bond_fund", NOW_S - 2 * DAY_S]]
    decision = decide(state, FixedModel("credit_card_standard", boost_from="bond_fund"), CATALOG, Policy(),
                      "mobile", NOW_S, 3)
    sip = next(o for o in decision.offers if o.product.product_id == "fund_sip")
    assert sip.reason_codes == ["similar_after_purchase"]
    assert "opened our bond fund" in sip.reason_en and "债券基金" in sip.reason_zh


def _sip_score(model: FixedModel, policy: Policy) -> float:
    state = customer()
    state.recent_purchases = [["bond_fund", NOW_S - 2 * DAY_S]]
    decision = decide(state, model, CATALOG, policy, "mobile", NOW_S, 40)
    return next(o.score for o in decision.offers if o.product.product_id == "fund_sip")


def test_the_similar_boost_is_weighted_by_the_models_tuned_weight():
    # fund_sip: propensity 0.01, boost 2; everything else in the chain is the same for both models,
    # so the priority scales as 1 + weight x 2: weight 2 gives five times weight 0.
    untuned = _sip_score(FixedModel("credit_card_standard", "bond_fund", similar_weight=0.0), Policy())
    tuned = _sip_score(FixedModel("credit_card_standard", "bond_fund", similar_weight=2.0), Policy())
    assert tuned == pytest.approx(5 * untuned, rel=1e-12)


def test_a_policy_override_pins_the_similar_weight_whatever_the_model_was_tuned_to():
    pinned = Policy(similar_weight_override=0.0)
    assert _sip_score(FixedModel("credit_card_standard", "bond_fund", similar_weight=2.0), pinned) == \
        pytest.approx(_sip_score(FixedModel("credit_card_standard", "bond_fund", similar_weight=0.0), Policy()),
                      rel=1e-12)


def test_every_offer_has_a_reason_in_both_languages():
    decision = decide(customer(), PriorModel(CATALOG), CATALOG, Policy(), "call_centre", NOW_S, 5)
    assert decision.offers
    assert all(o.reason_en and o.reason_zh and o.reason_codes for o in decision.offers)


def test_a_reason_reads_as_a_sentence_and_does_not_repeat_the_pitch():
    state = customer()
    state.holdings = {}
    offers = decide(state, FixedModel("mobile_banking"), CATALOG, Policy(), "teller", NOW_S, 5).offers
    banking = next(o for o in offers if o.product.product_id == "mobile_banking")
    # Nothing this customer did explains mobile banking, so only what is certain is said.
    assert banking.reason_codes == ["open_to_you"]
    assert banking.reason_en == "This is one of the products you can take up with us."
    assert all(o.product.pitch_en not in o.reason_en and o.product.pitch_zh not in o.reason_zh for o in offers)
    assert in_sentence("QDII global fund") == "QDII global fund" and in_sentence("Bond fund") == "bond fund"


def test_no_offer_claims_what_other_customers_choose():
    decision = decide(customer(), PriorModel(CATALOG), CATALOG, Policy(), "call_centre", NOW_S, 5)
    assert decision.offers
    assert all("like you" not in o.reason_en and "相似" not in o.reason_zh for o in decision.offers)


def test_fallback_is_degraded_and_low_risk():
    decision = fallback(CATALOG, "mobile", 3)
    assert decision.degraded and decision.offers
    assert all(o.product.risk_level <= 2 for o in decision.offers)


def _product_with_a_minimum():
    """A product with a minimum-assets rule, and a customer who passes every other rule for it."""
    product = next(p for p in CATALOG.products if p.min_assets_minor > 0 and "call_centre" in p.channels)
    tier = sorted(product.value_tiers)[0]
    return product, dict(risk_tolerance=5, value_tier=tier, birth_year=2026 - max(product.min_age, 30),
                         invested_minor=0)


def test_minimum_assets_hold_at_the_threshold_whatever_was_asked_before():
    # Answers for the other rules are remembered per group of alike customers; the minimum must
    # still be exact for each customer, in any order of requests.
    product, fits = _product_with_a_minimum()
    for balance, offered in [(product.min_assets_minor - 1, False), (product.min_assets_minor, True),
                             (product.min_assets_minor * 3, True), (product.min_assets_minor - 1, False)]:
        decision = decide(customer(balance_minor=balance, **fits), FixedModel(product.product_id), CATALOG,
                          Policy(), "call_centre", NOW_S, 40)
        assert (product.product_id in ids(decision)) is offered, balance
        if not offered:
            assert decision.excluded[product.product_id] == "min_assets"


def test_a_new_catalog_is_ruled_on_its_own_values():
    product, fits = _product_with_a_minimum()
    state = customer(balance_minor=product.min_assets_minor, **fits)
    raised = Catalog(tuple(replace(p, min_assets_minor=p.min_assets_minor * 2) if p is product else p
                           for p in CATALOG.products))
    assert product.product_id in ids(decide(state, FixedModel(product.product_id), CATALOG, Policy(),
                                            "call_centre", NOW_S, 40))
    decision = decide(state, FixedModel(product.product_id), raised, Policy(), "call_centre", NOW_S, 40)
    assert decision.excluded[product.product_id] == "min_assets"


def test_a_held_product_that_another_rule_excludes_too_is_reported_as_held():
    state = customer()  # mass market: the platinum card does not fit the tier either
    state.holdings["credit_card_platinum"] = Holding(1, NOW_S, NOW_S, 0.0)
    decision = decide(state, FixedModel("credit_card_platinum"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert decision.excluded["credit_card_platinum"] == "already_held"
    other = decide(customer(), FixedModel("credit_card_platinum"), CATALOG, Policy(), "call_centre", NOW_S, 40)
    assert other.excluded["credit_card_platinum"] == "tier_fit"


def test_memo_keeps_objects_apart_and_stays_bounded():
    memo: Memo[str] = Memo(max_entries=2)
    first, second = object(), object()
    assert memo.get((first,), ("x",), lambda: "first") == "first"
    assert memo.get((second,), ("x",), lambda: "second") == "second"
    assert memo.get((first,), ("x",), lambda: "recomputed") == "first"
    memo.get((first,), ("y",), lambda: "third")
    assert len(memo) <= 2


def test_age_bands_hold_at_both_ends_whatever_was_asked_before():
    product = next(p for p in CATALOG.products if p.max_age < 100 and "call_centre" in p.channels)
    fits = dict(risk_tolerance=5, value_tier=sorted(product.value_tiers)[0], invested_minor=0,
                balance_minor=product.min_assets_minor * 2)
    year = datetime.fromtimestamp(NOW_S, timezone.utc).year
    for age, offered in [(product.max_age + 1, False), (product.max_age, True), (product.min_age, True),
                         (product.min_age - 1, False), (product.max_age + 1, False), (product.min_age, True)]:
        decision = decide(customer(birth_year=year - age, **fits), FixedModel(product.product_id), CATALOG,
                          Policy(), "call_centre", NOW_S, 40)
        assert (product.product_id in ids(decision)) is offered, age
        if not offered:
            assert decision.excluded[product.product_id] == "age"

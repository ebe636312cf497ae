"""The marketing policy file and the chain configured by name: what marketing changes without
code, and the contact rules that depend on it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from domain.catalog import load_catalog
from decisioning import LEVERS_FILE, Policy, PolicyError, load_policy, policy_from_dict, rank
from recommender.model import popularity_model
from domain.state import CustomerState, Holding

CATALOG = load_catalog()
MODEL = popularity_model(CATALOG)
NOW_S = datetime(2026, 6, 1, 10, tzinfo=timezone.utc).timestamp()
DAY = "2026-06-01"


def customer(**changes) -> CustomerState:  # type: ignore[no-untyped-def]
    state = CustomerState("C000000001", as_of_s=NOW_S - 86_400, birth_year=1985, risk_tolerance=3,
                          employment="salaried", balance_minor=5_000_000)
    state.holdings = {"demand_deposit": Holding(1, NOW_S - 400 * 86_400, NOW_S - 400 * 86_400, 0.0)}
    for key, value in changes.items():
        setattr(state, key, value)
    return state


def ids(decision) -> list[str]:  # type: ignore[no-untyped-def]
    return [o.product.product_id for o in decision.offers]


def test_the_shipped_policy_file_is_valid_and_is_the_default_chain():
    policy = load_policy()
    assert policy.chain == Policy().chain
    assert json.loads(LEVERS_FILE.read_text())["levers"] == dict(policy.levers)


@pytest.mark.parametrize("data, names", [
    ({"levers": {"fund": -1}}, "levers.fund"),
    ({"levers": {"fund": "high"}}, "levers.fund"),
    ({"daily_caps": {"branch": 2}}, "daily_caps"),
    ({"decline_cooldown_days": {"meh": 3}}, "decline_cooldown_days"),
    ({"chain": ["eligibility", "magic"]}, "chain"),
    ({"levrs": {}}, "levrs"),
])
def test_a_bad_policy_value_is_refused_with_its_name(data, names):
    with pytest.raises(PolicyError, match=names):
        policy_from_dict(data)


def test_the_shipped_policy_serves_the_models_similar_weight():
    assert load_policy().similar_weight_override is None
    assert "similar_weight" not in json.loads(LEVERS_FILE.read_text())


def test_a_levers_file_still_setting_similar_weight_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "levers.json"
    path.write_text('{"levers": {"fund": 1.1}, "similar_weight": 1.0}')
    with pytest.raises(PolicyError, match="levers.json.*similar_weight: no longer a policy key") as info:
        load_policy(path)
    assert "similar_weight_override" in str(info.value) and "nbo tune" in str(info.value)


@pytest.mark.parametrize("value, expected", [(None, None), (0, 0.0), (1.5, 1.5)])
def test_the_similar_weight_override_is_off_unless_a_number_is_given(value, expected):
    assert policy_from_dict({"levers": {}, "similar_weight_override": value}).similar_weight_override == expected


@pytest.mark.parametrize("value", [-1, 101, "high", True])
def test_a_bad_similar_weight_override_is_refused_with_its_name(value):
    with pytest.raises(PolicyError, match="similar_weight_override"):
        policy_from_dict({"levers": {}, "similar_weight_override": value})


def test_a_policy_file_error_names_the_file(tmp_path):
    path = tmp_path / "levers.json"
    path.write_text('{"levers": {"fund": -2}}')
    with pytest.raises(PolicyError, match="levers.json.*levers.fund"):
        load_policy(path)


def test_a_lever_of_zero_stops_a_family_everywhere():
    plain = rank(customer(), MODEL, CATALOG, Policy(), "mobile", NOW_S, 10)
    family = plain.offers[0].product.family
    stopped = rank(customer(), MODEL, CATALOG, policy_from_dict({"levers": {family: 0}}), "mobile", NOW_S, 10)
    assert stopped.offers[0].product.family != family
    assert all(o.score == 0 for o in stopped.offers if o.product.family == family)


def test_the_chain_is_configured_by_name_and_a_left_out_step_does_not_run():
    without_policy = policy_from_dict({"chain": ["eligibility", "scoring", "arbitration", "select", "reasons"]})
    state = customer(open_complaint=True)
    decision = rank(state, MODEL, CATALOG, without_policy, "call_centre", NOW_S, 3)
    assert decision.rules_applied == ["eligibility", "scoring", "arbitration", "select", "reasons"]
    assert decision.offers and decision.service_action is None  # contact policy was left out
    assert rank(state, MODEL, CATALOG, Policy(), "call_centre", NOW_S, 3).offers == []


def test_segment_g_gets_satisfaction_seen_to_before_any_offer():
    # Buys a lot, complained twice, nothing open now: no selling, and not the open-complaint text.
    decision = rank(customer(vs_segment="G", purchases=5, complaints=2), MODEL, CATALOG, Policy(), "teller", NOW_S, 1)
    assert decision.offers == [] and decision.service_action == "address_satisfaction"
    assert set(decision.excluded.values()) >= {"segment_g_fix_first"}
    opened = rank(customer(vs_segment="G", purchases=5, complaints=3, open_complaint=True), MODEL, CATALOG, Policy(),
                  "teller", NOW_S, 1)
    assert opened.offers == [] and opened.service_action == "resolve_complaint"


def test_the_daily_cap_leaves_room_only_for_what_is_left_and_counts_all_channels():
    one_left = customer(daily_contacts={f"{DAY}|call_centre": 2})
    assert len(rank(one_left, MODEL, CATALOG, Policy(), "call_centre", NOW_S, 3).offers) == 1
    yesterday = customer(daily_contacts={"2026-05-31|call_centre": 3})
    assert len(rank(yesterday, MODEL, CATALOG, Policy(), "call_centre", NOW_S, 3).offers) == 3
    busy_elsewhere = customer(daily_contacts={f"{DAY}|mobile": 6, f"{DAY}|teller": 2})
    assert rank(busy_elsewhere, MODEL, CATALOG, Policy(), "call_centre", NOW_S, 3).offers == []


def test_a_shorter_cool_down_from_the_policy_file_brings_the_product_back_sooner():
    from domain.state import ContactRecord

    state = customer()
    best = ids(rank(state, MODEL, CATALOG, Policy(), "mobile", NOW_S, 1))[0]
    state.contacts = {best: ContactRecord(last_declined_at_s=NOW_S - 5 * 86_400, last_decline_reason="too_expensive")}
    assert best not in ids(rank(state, MODEL, CATALOG, Policy(), "mobile", NOW_S, 40))
    short = policy_from_dict({"decline_cooldown_days": {"too_expensive": 2}})
    assert best in ids(rank(state, MODEL, CATALOG, short, "mobile", NOW_S, 40))


def test_the_same_input_always_gives_the_same_answer():
    first = rank(customer(), MODEL, CATALOG, Policy(), "mobile", NOW_S, 5)
    again = rank(customer(), MODEL, CATALOG, Policy(), "mobile", NOW_S, 5)
    assert ids(first) == ids(again) and [o.reason_en for o in first.offers] == [o.reason_en for o in again.offers]


def test_a_flat_file_of_numbers_is_levers_unless_it_names_a_knob():
    assert dict(policy_from_dict({"fund_sip": 1.5, "loan": 0.5}).levers) == {"fund_sip": 1.5, "loan": 0.5}
    pinned = policy_from_dict({"similar_weight_override": 1.5})
    assert pinned.similar_weight_override == 1.5 and dict(pinned.levers) == {}
    assert policy_from_dict({"value_exponent": 0.5}).value_exponent == 0.5


def test_the_policy_version_names_its_content_not_the_files_layout():
    from decisioning import policy_from_dict

    base = policy_from_dict({"levers": {"fund_sip": 1.1, "gold": 2}, "value_exponent": 0.25})
    same = policy_from_dict({"value_exponent": 0.25, "comment": "reordered, commented",
                             "levers": {"gold": 2.0, "fund_sip": 1.1}})
    changed = policy_from_dict({"levers": {"fund_sip": 1.2, "gold": 2}, "value_exponent": 0.25})
    assert base.version == same.version and len(base.version) == 12
    assert changed.version != base.version
    assert Policy().version == policy_from_dict({}).version

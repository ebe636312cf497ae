"""The interaction matrix from an event log: states at each cutoff, columns, labels."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np

from domain.catalog import load_catalog
from domain.features import apply_all
from recommender.matrix import build_matrix, fold_event_log, label_matrix, token_vocabulary
from simulator.bank import simulate
from domain.state import CustomerState
from schemas.codec import decode

DAY_S = 86_400.0
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc).timestamp()


def _iso(at_s: float) -> str:
    return datetime.fromtimestamp(at_s, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _purchase(n: int, cid: str, at_s: float, product: str) -> bytes:
    return json.dumps({"event_id": f"evt-test-{n:04d}", "schema_version": 1, "customer_id": cid, "occurred_at": _iso(at_s),
                       "source": "core_banking", "type": "purchase", "product_id": product, "amount_minor": 0,
                       "currency": "CNY", "channel": "branch", "decision_id": None}).encode()


def _hotline(n: int, cid: str, at_s: float, intent: str) -> bytes:
    return json.dumps({"event_id": f"evt-test-{n:04d}", "schema_version": 1, "customer_id": cid, "occurred_at": _iso(at_s),
                       "source": "cti", "type": "hotline", "intent": intent, "duration_s": 120, "resolved": True,
                       "sentiment": 0.2}).encode()


LOG = [
    _purchase(1, "C000000001", T0, "demand_deposit"),
    _purchase(2, "C000000002", T0 + 1, "demand_deposit"),
    _hotline(3, "C000000001", T0 + 2 * DAY_S, "loan_inquiry"),
    _purchase(4, "C000000002", T0 + 3 * DAY_S, "fund_sip"),
    _purchase(5, "C000000001", T0 + 12 * DAY_S, "consumer_loan"),  # after the first cutoff
    _purchase(6, "C000000002", T0 + 25 * DAY_S, "mobile_banking"),  # after the last cutoff: a label only
]
CUTS = (T0 + 10 * DAY_S, T0 + 20 * DAY_S)


def test_states_at_each_cutoff_hold_only_earlier_events() -> None:
    folded = fold_event_log(LOG, CUTS)
    first, second = folded.states
    assert set(first["C000000001"].holdings) == {"demand_deposit"}
    assert set(second["C000000001"].holdings) == {"demand_deposit", "consumer_loan"}
    assert set(second["C000000002"].holdings) == {"demand_deposit", "fund_sip"}  # mobile_banking is later
    assert folded.events == len(LOG)
    assert [p.product_id for p in folded.purchases][-1] == "mobile_banking"


def test_matrix_has_products_then_tokens_and_labels_come_from_the_window() -> None:
    catalog = load_catalog()
    folded = fold_event_log(LOG, CUTS)
    states = folded.states[0]
    vocab = token_vocabulary(states.values(), CUTS[0], min_customers=1)
    assert "hotline:loan_inquiry" in vocab
    m = build_matrix(states, catalog.ids, vocab, CUTS[0], customer_ids=["C000000001", "C000000002", "C000000404"])
    cols = list(catalog.ids) + list(vocab)
    row = dict(zip([cols[j] for j in m.x[0].indices], m.x[0].data))
    assert row["demand_deposit"] >= 1.0
    assert 0 < row["hotline:loan_inquiry"] <= 1.0  # decayed since the call
    assert "consumer_loan" not in row
    assert m.x[2].nnz == 0  # unknown customer: an empty row
    y = label_matrix(folded.purchases, m.customer_ids, catalog.ids, CUTS[0], CUTS[1])
    assert y[0, catalog.index["consumer_loan"]] == 1 and y.nnz == 1


def test_fold_equals_replaying_each_customer_with_apply_all() -> None:
    catalog = load_catalog()
    result = simulate(catalog, customers=40, days=5, seed=7)
    cutoff = datetime.fromisoformat(result.truth.meta["cutoff"]).timestamp()
    folded = fold_event_log(result.encoded(), [cutoff])
    by_customer: dict[str, list] = {}
    for raw in result.encoded():
        event = decode(raw)
        by_customer.setdefault(event.customer_id, []).append(event)
    for cid, events in list(by_customer.items())[:10]:
        expected = apply_all(CustomerState(customer_id=cid), events)
        got = folded.states[0][cid]
        assert got.holdings.keys() == expected.holdings.keys()
        assert got.tokens.keys() == expected.tokens.keys()
        for key, value in expected.tokens.items():
            assert np.isclose(got.tokens[key], value)
        # the truth's holdings at the cutoff are what the log says the customer holds
        held = {catalog.ids[j] for j in np.nonzero(result.truth.held_at_cutoff[int(cid[1:])])[0]}
        assert held == set(got.holdings)

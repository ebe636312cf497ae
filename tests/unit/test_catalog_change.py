"""Known-answer tests of ranking while the catalog changes under a served model: a product the
model was not trained on gets its family's mean propensity (marked ``new_product``, nothing
personal claimed about it); a retired product is never offered; the model holder keeps a trained
model across a catalog change and rebuilds the popularity model for it; the stream accepts a
launched product's purchases from the batch after the reload; a bank's own catalog without the
packaged safe products still has fallback and cold-start offers."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

import adapters.catalog_file as catalog_file
from adapters.fakes import MemoryCatalogSource, MemoryRegistry, MemoryStateStore
from adapters.model_watch import ModelHolder
from bank_catalog import BANK_IDS, GREEN_BOND_FUND, PACKAGED, csv_text, save, trained_for, without
from decisioning import SAFE_FALLBACK, Policy, fallback, rank
from decisioning.fallback import safe_products
from domain.catalog import parse_catalog
from domain.features import FeatureParams
from domain.state import CustomerState
from recommender.model import ScoredProducts
from schemas.codec import encode
from schemas.events import ProductPurchased
from schemas.topics import PURCHASES
from streams.core import BatchHandler, KnownProducts, follow_catalog

NOW_S = datetime(2026, 6, 1, 10, tzinfo=timezone.utc).timestamp()
#: Ranks by propensity alone: no channel fit, no value weighting, no levers, room for every offer.
PLAIN = Policy(channel_fit={}, value_exponent=0.0, levers={}, daily_caps={"teller": 10}, daily_cap_total=10)

#: The model was trained on these four products, with these propensities for every customer.
TRAINED = {"demand_deposit": 0.10, "bond_fund": 0.40, "mixed_fund": 0.20, "wealth_r2": 0.30}
#: A launched product of a family (gold) the model has no product of.
LAUNCHED_GOLD = ("gold_plan,Gold plan,积存金计划,gold,1,0,18,120,mass|affluent|high_net_worth|private,200,true,"
                 "teller|call_centre|mobile,60,Buy gold a gram at a time.,按克积存黄金。")


class KnownAnswerModel:
    """Scores the products it was trained on with ``TRAINED``, whoever the customer."""

    version = "known-answer"
    similar_weight = 0.0
    metadata = {"catalog_hash": "0" * 64}

    def __init__(self, trained: dict[str, float]) -> None:
        self.product_ids = tuple(trained)
        self.propensity = np.array(list(trained.values()))

    def score(self, held, tokens, recent, now_s, segment) -> ScoredProducts:
        n = len(self.product_ids)
        return ScoredProducts(self.product_ids, self.propensity.copy(), np.zeros(n), (None,) * n,
                              self.propensity.copy())


def customer() -> CustomerState:
    """Known to the bank (a profile), 41 in 2026, risk tolerance 3, 50,000 CNY in the account
    (clears the R2 wealth product's 10,000 minimum), holds nothing."""
    return CustomerState("C000000001", as_of_s=NOW_S - 86_400, birth_year=1985, risk_tolerance=3,
                         employment="salaried", balance_minor=5_000_000, events_applied=1)


def offers(catalog_text: str, limit: int = 10) -> list[tuple[str, float]]:
    decision = rank(customer(), KnownAnswerModel(TRAINED), parse_catalog(catalog_text), PLAIN, "teller", NOW_S,
                    limit)
    return [(o.product.product_id, round(o.propensity, 6)) for o in decision.offers]


def test_a_launched_product_gets_its_familys_mean_propensity_and_is_offered():
    text = csv_text(("demand_deposit", "bond_fund", "mixed_fund", "wealth_r2"), (GREEN_BOND_FUND,))
    # green_bond_fund is a fund: the mean of the model's two funds, (0.40 + 0.20) / 2 = 0.30.
    assert offers(text) == [("bond_fund", 0.4), ("green_bond_fund", 0.3), ("wealth_r2", 0.3), ("mixed_fund", 0.2),
                            ("demand_deposit", 0.1)]


def test_a_launched_product_of_a_family_the_model_never_saw_gets_the_mean_over_the_catalog():
    text = csv_text(("demand_deposit", "bond_fund", "mixed_fund", "wealth_r2"), (LAUNCHED_GOLD,))
    assert dict(offers(text))["gold_plan"] == 0.25  # (0.10 + 0.40 + 0.20 + 0.30) / 4


def test_the_reason_of_a_launched_product_claims_nothing_about_the_customer_and_says_it_is_new():
    text = csv_text(("demand_deposit", "bond_fund", "mixed_fund", "wealth_r2"), (GREEN_BOND_FUND,))
    decision = rank(customer(), KnownAnswerModel(TRAINED), parse_catalog(text), PLAIN, "teller", NOW_S, 10)
    by_id = {o.product.product_id: o for o in decision.offers}
    new, known = by_id["green_bond_fund"], by_id["mixed_fund"]
    assert new.reason_codes == ["within_risk_tolerance", "new_product"]
    assert new.reason_facts == {"risk_tolerance": 3, "product_risk_level": 2, "new_product": True,
                                "propensity_from": "family_mean"}
    assert new.reason_en == "It is within the risk level of your suitability assessment (up to R3)."
    assert (new.similar_boost, new.because_of) == (0.0, None)
    assert "new_product" not in known.reason_codes and "new_product" not in known.reason_facts


def test_a_retired_product_is_never_offered_though_the_model_still_scores_it():
    # bond_fund, the model's favourite, was retired: the rest keep the model's own order.
    text = csv_text(("demand_deposit", "mixed_fund", "wealth_r2"))
    assert offers(text) == [("wealth_r2", 0.3), ("mixed_fund", 0.2), ("demand_deposit", 0.1)]


def test_a_held_single_hold_product_does_not_drag_its_familys_mean_down():
    text = csv_text(("demand_deposit", "bond_fund", "mixed_fund", "wealth_r2"), (GREEN_BOND_FUND,))
    model = KnownAnswerModel({**TRAINED, "mixed_fund": 0.0})  # as the model scores a held single-hold product
    decision = rank(customer(), model, parse_catalog(text), PLAIN, "teller", NOW_S, 10)
    assert {o.product.product_id: o.propensity for o in decision.offers}["green_bond_fund"] == pytest.approx(0.40)


# --- the model holder across a catalog change ----------------------------------------------------

def test_the_popularity_model_is_rebuilt_for_a_changed_catalog_and_offers_the_launched_product():
    source = MemoryCatalogSource(csv_text())
    holder = ModelHolder(MemoryRegistry(), source)
    assert holder.current.product_ids == BANK_IDS
    source.set(csv_text(without("bond_fund"), (GREEN_BOND_FUND,)))
    assert source.refresh() and holder.refresh() is True
    assert holder.version == "popularity"
    assert holder.current.product_ids == (*without("bond_fund"), "green_bond_fund")


def test_a_trained_model_keeps_serving_across_a_catalog_change_and_a_model_for_the_new_one_is_promoted():
    first = parse_catalog(csv_text())
    source = MemoryCatalogSource(first)
    registry = MemoryRegistry()
    registry.save(trained_for(first), {"catalog_hash": first.content_hash()}, version="v-bank")
    registry.promote("v-bank", first)
    holder = ModelHolder(registry, source)
    assert holder.version == "v-bank"

    changed = csv_text(without("bond_fund"), (GREEN_BOND_FUND,))
    source.set(changed)
    assert source.refresh() is True
    assert holder.refresh() is False and holder.version == "v-bank"  # kept: it maps products by id

    second = parse_catalog(changed)
    registry.save(trained_for(second), {"catalog_hash": second.content_hash()}, version="v-bank-2")
    registry.promote("v-bank-2", second)  # trained for the catalog in use: served
    assert holder.refresh() is True and holder.version == "v-bank-2"


# --- the stream's known products -----------------------------------------------------------------

def purchase(i: int, product_id: str) -> tuple:
    event = ProductPurchased(event_id=f"ev-buy-{i}", customer_id="C000000009", source="core_banking",
                             occurred_at=datetime(2026, 5, 1, tzinfo=timezone.utc) + timedelta(minutes=i),
                             product_id=product_id, channel="branch")
    return PURCHASES, 0, i, event.customer_id.encode(), encode(event)


def test_the_stream_accepts_a_launched_products_purchases_from_the_batch_after_the_reload():
    store, letters = MemoryStateStore(), []

    async def send(batch):
        letters.extend(batch)

    source = MemoryCatalogSource(csv_text())
    def fail(reason: str, exc: BaseException) -> None:
        raise AssertionError(reason) from exc

    handler = BatchHandler(store, FeatureParams(), send, retries=0, products=KnownProducts.of(source.current),
                           clock_s=lambda: NOW_S, on_failure=fail)  # type: ignore[arg-type]
    asyncio.run(handler.handle([purchase(1, "green_bond_fund")]))
    assert [(d.offset, d.field) for d in letters] == [(1, "product_id")]  # not sold yet: dead-lettered

    source.set(csv_text(without("bond_fund"), (GREEN_BOND_FUND,)))
    assert follow_catalog(handler, source) is True
    asyncio.run(handler.handle([purchase(2, "green_bond_fund"), purchase(3, "bond_fund")]))
    assert "green_bond_fund" in store.get("C000000009").holdings
    assert [(d.offset, d.field) for d in letters] == [(1, "product_id"), (3, "product_id")]  # bond_fund retired
    assert follow_catalog(handler, source) is False  # nothing new


# --- offers without a ranking on a bank's own catalog --------------------------------------------

def test_a_bank_catalog_without_the_packaged_safe_products_still_gets_fallback_and_cold_start_offers():
    # Of these only the demand deposit and the payroll service are R1, outside credit and for every tier.
    bank = parse_catalog(csv_text(("time_deposit_3y", "demand_deposit", "large_cd", "bond_fund", "credit_card_gold",
                                   "payroll_service")))
    assert [o.product.product_id for o in fallback(bank, "teller", 3).offers] == ["demand_deposit", "payroll_service"]
    assert [o.product.product_id for o in fallback(bank, "mobile", 3).offers] == ["demand_deposit"]  # payroll: TC
    stranger = rank(CustomerState("C000000123"), KnownAnswerModel(TRAINED), bank, Policy(), "call_centre", NOW_S, 3)
    assert [(o.product.product_id, o.reason_codes) for o in stranger.offers] == [
        ("demand_deposit", ["cold_start"]), ("payroll_service", ["cold_start"])]
    # The packaged catalog keeps its named safe products, in their order.
    assert tuple(p.product_id for p in safe_products(PACKAGED)) == SAFE_FALLBACK


# --- the catalog file read while it is being written ---------------------------------------------

def test_a_catalog_file_that_changes_while_it_is_read_is_looked_at_again_on_the_next_check(tmp_path, monkeypatch):
    path = tmp_path / "mybank.csv"
    save(path, csv_text())
    source = catalog_file.CatalogFile(path)
    first = source.current
    half = csv_text(without("bond_fund"))  # a valid prefix: the writer has not written every row yet
    whole = csv_text(extra_rows=(GREEN_BOND_FUND,))
    real_load = catalog_file.load_catalog

    def load_while_the_writer_finishes(p):
        loaded = real_load(p)
        save(path, whole)
        return loaded

    save(path, half)
    monkeypatch.setattr(catalog_file, "load_catalog", load_while_the_writer_finishes)
    assert source.refresh() is False and source.current is first and not source.refused
    monkeypatch.setattr(catalog_file, "load_catalog", real_load)
    assert source.refresh() is True
    assert source.current.ids == (*BANK_IDS, "green_bond_fund")

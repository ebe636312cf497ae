"""The ModelRegistry contract, against ``MemoryRegistry`` and the files ``ModelRegistry``: a
saved version is not served until promoted, loads back scoring like the trained model, and a
model trained for another catalog (or another product order) is refused with a message that
says to retrain, leaving the promoted version in place."""

from __future__ import annotations

import functools
import re
from dataclasses import replace

import numpy as np
import pytest

from adapters.model_registry import RegistryError
from domain.catalog import parse_catalog
from recommender.model import DAY_S, ModelParams, NboModel, train_model
from portkit import CATALOG

OTHER_CATALOG = parse_catalog(CATALOG.canonical_text.replace("Demand deposit account", "Current account", 1))
HELD = {"demand_deposit": 1.0, "wealth_r2": 2.0}
TOKENS = {"hotline:loan_inquiry": 1.5}
RECENT = [("wealth_r2", 100 * DAY_S)]


@functools.cache
def _trained_once() -> NboModel:
    rng = np.random.default_rng(0)
    p = len(CATALOG)
    x = (rng.random((300, p + 2)) < 0.15) * rng.integers(1, 5, (300, p + 2))
    y = rng.random((300, p)) < 0.05
    single = np.array([not product.multi_hold for product in CATALOG.products])
    segments = list(rng.choice(["mass", "affluent"], 300))
    return train_model(x, y, segments, CATALOG.ids, ("hotline:loan_inquiry", "pos:hotel_5star"), single,
                       ModelParams(factors=3, iterations=3), version="draft")


def trained(variant: int = 0, product_ids: tuple[str, ...] | None = None) -> NboModel:
    """A small trained model (trained once: seconds on a busy machine); ``variant`` shifts its
    biases so two variants score differently; ``product_ids`` relabels its products."""
    model = _trained_once()
    return replace(model, bias=model.bias + 0.5 * variant, product_ids=product_ids or model.product_ids)


def test_nothing_is_served_until_promoted_then_the_promoted_version_loads(registry):
    first, second = trained(0), trained(1)
    meta = {"metrics": {"ndcg": 0.42}, "data_window": {"from": "2026-01-01", "to": "2026-03-31"}}
    assert registry.save(first, meta, version="v1") == "v1"
    registry.save(second, version="v2")
    assert registry.versions() == ["v1", "v2"]
    assert registry.current_version() is None
    with pytest.raises(RegistryError, match="no current model"):
        registry.load()

    registry.promote("v1")
    assert registry.current_version() == "v1"
    loaded = registry.load()
    assert (loaded.version, loaded.product_ids) == ("v1", CATALOG.ids)
    want = first.score(HELD, TOKENS, RECENT, 110 * DAY_S, "mass")
    got = loaded.score(HELD, TOKENS, RECENT, 110 * DAY_S, "mass")
    np.testing.assert_allclose(got.score, want.score, rtol=1e-5)
    assert got.because_of == want.because_of

    assert not np.allclose(registry.load("v2").score(HELD, TOKENS, RECENT, 110 * DAY_S, "mass").score, want.score)
    registry.promote("v2")
    assert (registry.current_version(), registry.load().version, registry.load("v1").version) == ("v2", "v2", "v1")


def test_metadata_keeps_what_was_given_and_says_what_the_model_is(registry):
    registry.save(trained(), {"metrics": {"ndcg": 0.42}, "data_window": {"from": "a", "to": "b"}}, version="v1")
    meta = registry.metadata("v1")
    assert meta["metrics"] == {"ndcg": 0.42} and meta["data_window"] == {"from": "a", "to": "b"}
    assert meta["catalog_hash"] == CATALOG.content_hash()
    assert meta["version"] == "v1" and meta["product_ids"] == list(CATALOG.ids)
    assert meta["params"] == ModelParams(factors=3, iterations=3).to_dict()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created_at"])


def test_versions_get_distinct_names_and_are_never_overwritten(registry):
    a, b = registry.save(trained()), registry.save(trained(1))
    assert a != b and sorted([a, b]) == registry.versions()
    with pytest.raises(RegistryError, match="already exists"):
        registry.save(trained(), version=a)
    with pytest.raises(RegistryError, match="invalid version name"):
        registry.save(trained(), version="../escape")
    with pytest.raises(RegistryError, match="no model version"):
        registry.metadata("never-saved")
    with pytest.raises(RegistryError, match="no model version"):
        registry.promote("never-saved")


def test_a_model_for_another_catalog_is_refused_and_the_promoted_one_stays(registry):
    registry.save(trained(), version="good")
    registry.promote("good")
    registry.save(trained(1), {"catalog_hash": OTHER_CATALOG.content_hash()}, version="foreign")
    message = (rf"model version 'foreign' was trained for catalog {OTHER_CATALOG.content_hash()[:12]}, "
               rf"the catalog in use is {CATALOG.content_hash()[:12]}; retrain")
    with pytest.raises(RegistryError, match=message):
        registry.promote("foreign")
    with pytest.raises(RegistryError, match=message):
        registry.load("foreign")
    assert registry.current_version() == "good"
    assert registry.load().version == "good"

    # The same check against a catalog given by the caller.
    with pytest.raises(RegistryError, match="was trained for catalog .*; retrain"):
        registry.load("good", OTHER_CATALOG)


def test_a_model_with_another_product_order_is_refused(registry):
    registry.save(trained(product_ids=tuple(reversed(CATALOG.ids))), version="shuffled")
    with pytest.raises(RegistryError, match="product order differs from the catalog; retrain"):
        registry.promote("shuffled")
    assert registry.current_version() is None


def test_a_forced_promotion_is_recorded_in_the_versions_metadata(registry):
    registry.save(trained(0), version="checked")
    registry.save(trained(1), version="refused")
    registry.promote("checked")
    assert registry.metadata("checked")["promotion"]["forced"] is False
    reasons = ["only 50 labelled purchases"]
    registry.promote("refused", forced=True, overrode=reasons)
    assert registry.current_version() == "refused"
    promotion = registry.metadata("refused")["promotion"]
    assert (promotion["forced"], promotion["overrode"]) == (True, reasons)
    assert promotion["at"].endswith("Z")
    # the artifact still loads (the record is metadata, not part of the checked arrays)
    assert registry.load().version == "refused"

"""The model registry: versions round-trip exactly, promotion is checked, bad artifacts are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from domain.catalog import load_catalog, parse_catalog
from recommender.model import DAY_S, ModelParams, NboModel, train_model
from adapters.model_registry import MODEL_FILE, META_FILE, ModelRegistry, RegistryError

CATALOG = load_catalog()


def _model(seed: int = 0) -> NboModel:
    rng = np.random.default_rng(seed)
    p = len(CATALOG)
    tokens = ("hotline:loan_inquiry", "pos:hotel_5star")
    x = (rng.random((300, p + 2)) < 0.15) * rng.integers(1, 5, (300, p + 2))
    y = rng.random((300, p)) < 0.05
    single = np.array([not prod.multi_hold for prod in CATALOG.products])
    segments = list(rng.choice(["mass", "affluent"], 300))
    return train_model(x, y, segments, CATALOG.ids, tokens, single, ModelParams(factors=3, iterations=3),
                       version="draft")


HELD = {"demand_deposit": 1.0, "wealth_r2": 2.0}
TOKENS = {"hotline:loan_inquiry": 1.5}
RECENT = [("wealth_r2", 100 * DAY_S)]


def test_saved_version_scores_exactly_like_the_trained_model(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, CATALOG)
    model = _model()
    version = registry.save(model, {"metrics": {"ndcg": 0.42}, "data_window": {"from": "a", "to": "b"}})
    loaded = registry.load(version)
    assert loaded.version == version
    assert loaded.product_ids == CATALOG.ids
    before = model.score(HELD, TOKENS, RECENT, 110 * DAY_S, "mass")
    after = loaded.score(HELD, TOKENS, RECENT, 110 * DAY_S, "mass")
    np.testing.assert_allclose(after.score, before.score, rtol=1e-5)
    assert after.because_of == before.because_of
    meta = registry.metadata(version)
    for key in ("catalog_hash", "data_window", "params", "metrics", "created_at", "sha256"):
        assert key in meta


def test_nothing_is_current_until_promoted(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, CATALOG)
    assert registry.current_version() is None
    with pytest.raises(RegistryError, match="no current model"):
        registry.load()
    first = registry.save(_model(), version="v1")
    second = registry.save(_model(1), version="v2")
    assert registry.current_version() is None
    registry.promote(first)
    assert registry.current_version() == "v1"
    registry.promote(second)
    assert registry.current_version() == "v2"
    assert registry.load().version == "v2"
    assert registry.versions() == ["v1", "v2"]


def test_a_corrupt_artifact_is_refused_and_not_promoted(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, CATALOG)
    good = registry.save(_model(), version="good")
    registry.promote(good)
    bad = registry.save(_model(1), version="bad")
    path = tmp_path / "versions" / bad / MODEL_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match="corrupt"):
        registry.load(bad)
    with pytest.raises(RegistryError):
        registry.promote(bad)
    assert registry.current_version() == "good"
    (tmp_path / "versions" / good / META_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(RegistryError, match="corrupt"):
        registry.load(good)


def test_a_model_for_another_catalog_is_refused(tmp_path: Path) -> None:
    version = ModelRegistry(tmp_path, CATALOG).save(_model(), version="v1")
    text = CATALOG.canonical_text.replace("Demand deposit account", "Current account", 1)
    other = parse_catalog(text)
    assert other.content_hash() != CATALOG.content_hash()
    with pytest.raises(RegistryError, match="catalog"):
        ModelRegistry(tmp_path, other).load(version)
    with pytest.raises(RegistryError, match="catalog"):
        ModelRegistry(tmp_path, other).promote(version)


def test_versions_are_not_overwritten_and_names_are_checked(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, CATALOG)
    registry.save(_model(), version="v1")
    with pytest.raises(RegistryError, match="exists"):
        registry.save(_model(), version="v1")
    with pytest.raises(RegistryError, match="invalid version"):
        registry.save(_model(), version="../escape")
    with pytest.raises(RegistryError, match="no model version"):
        registry.load("missing")


def test_params_round_trip(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path, CATALOG)
    model = _model()
    model.params = replace(model.params, half_life_days=7.0, similar_weight=0.9)
    version = registry.save(model)
    loaded = registry.load(version)
    assert loaded.params == model.params
    assert loaded.similar_weight == 0.9  # the tuned weight travels with the artifact to the server
    assert json.loads((tmp_path / "versions" / version / META_FILE).read_text())["params"]["half_life_days"] == 7.0


def test_after_purchase_transitions_round_trip_and_old_artifacts_still_load(tmp_path: Path) -> None:
    import io

    registry = ModelRegistry(tmp_path, CATALOG)
    model = _model()
    p = len(CATALOG)
    transitions = np.zeros((p, p))
    transitions[CATALOG.index["mortgage"], CATALOG.index["home_insurance"]] = 4.0
    model = replace(model, transitions=transitions)
    version = registry.save(model, version="with-transitions")
    loaded = registry.load(version)
    np.testing.assert_array_equal(loaded.transitions, transitions)
    recent = [("mortgage", 100 * DAY_S)]
    after = loaded.score(HELD, TOKENS, recent, 101 * DAY_S, "mass")
    assert after.because_of[CATALOG.index["home_insurance"]] == "mortgage"
    np.testing.assert_allclose(after.score, model.score(HELD, TOKENS, recent, 101 * DAY_S, "mass").score, rtol=1e-5)

    # An artifact written before transitions existed: no such array; it boosts by ``similar``.
    blob = (tmp_path / "versions" / version / MODEL_FILE).read_bytes()
    with np.load(io.BytesIO(blob)) as z:
        arrays = {name: z[name] for name in z.files if name != "transitions"}
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    from adapters.model_registry import model_from_bytes

    old = model_from_bytes(buffer.getvalue(), "old", model.params, {})
    assert old.transitions is None
    boost, _ = old.similar_boost(recent, 100 * DAY_S)
    np.testing.assert_allclose(boost, np.maximum(model.similar[CATALOG.index["mortgage"]], 0.0), atol=1e-6)

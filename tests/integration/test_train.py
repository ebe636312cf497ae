"""nbo train / promote / evaluate on a simulated log; the offer service's model holder swaps to a
promoted model and keeps it when a newer promoted artifact is corrupt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from domain.catalog import load_catalog
from decisioning import Policy, rank
from domain.features import apply_all
from adapters.model_registry import CURRENT_FILE, MODEL_FILE, ModelRegistry
from simulator.bank import DEFAULT_START, write_jsonl
from domain.state import CustomerState
from schemas.codec import decode
from adapters.model_watch import ModelHolder
from services.cli import main

CATALOG = load_catalog()


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    write_jsonl(path, CATALOG, customers=1500, days=30, seed=11, progress=False)
    return path


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_train_promote_and_the_service_swaps_models(events: Path, tmp_path: Path, capsys) -> None:
    registry_dir = tmp_path / "models"
    holder = ModelHolder(registry_dir, CATALOG)
    assert holder.version == "popularity"  # works before any training

    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--json",
                 "--params", '{"similar_weight": 0.7}']) == 0
    info = _last_json(capsys.readouterr().out)
    first = info["version"]
    assert info["customers"] == 1500 and info["purchases"] > 0
    assert not holder.refresh()  # trained, not promoted: still the prior
    # A few hundred labelled purchases: the promotion gate refuses it; forced, it serves.
    assert not info["promotion_gate"]["passed"]
    assert main(["promote", first, "--registry", str(registry_dir)]) == 1
    assert not holder.refresh()
    assert main(["promote", first, "--registry", str(registry_dir), "--force"]) == 0
    assert holder.refresh() and holder.version == first
    assert holder.current.similar_weight == 0.7  # the weight trained with is the weight that serves

    # The service ranks a simulated customer with the promoted model.
    lines = events.read_bytes().splitlines()
    mine = [decode(raw) for raw in lines if b'"C000000007"' in raw]
    state = apply_all(CustomerState("C000000007"), mine)
    now_s = DEFAULT_START.timestamp() + 30 * 86_400
    decision = rank(state, holder.current, CATALOG, Policy(), "mobile", now_s, 3)
    assert decision.offers
    assert all(0.0 <= o.propensity <= 1.0 for o in decision.offers)
    assert all(o.product.product_id not in state.holdings or o.product.multi_hold for o in decision.offers)

    # A newer version whose file was damaged: promote refuses; forced current, the holder keeps the old one.
    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--json",
                 "--params", '{"l2": 10}']) == 0
    second = _last_json(capsys.readouterr().out)["version"]
    blob = registry_dir / "versions" / second / MODEL_FILE
    blob.write_bytes(blob.read_bytes()[:-100])
    assert main(["promote", second, "--registry", str(registry_dir), "--force"]) == 1
    assert ModelRegistry(registry_dir).current_version() == first
    (registry_dir / CURRENT_FILE).write_text(second + "\n")
    assert not holder.refresh()
    assert holder.version == first


def test_evaluate_json_has_the_fixed_shape(events: Path, tmp_path: Path, capsys) -> None:
    out, chart = tmp_path / "report.json", tmp_path / "report.png"
    assert main(["evaluate", "--events", str(events), "--json", "--out", str(out), "--chart", str(chart)]) == 0
    result = _last_json(capsys.readouterr().out)
    assert result["k"] == 3
    for row in ("model", "popularity", "segment_popularity", "random", "oracle"):
        assert set(result["rows"][row]) >= {"ndcg", "map", "recall", "hit_rate", "coverage"}
    rows = result["rows"]
    assert rows["oracle"]["ndcg"] > rows["popularity"]["ndcg"] > rows["random"]["ndcg"]
    assert rows["model"]["ndcg"] > rows["random"]["ndcg"]
    assert json.loads(out.read_text())["rows"] == rows
    # Rankings hold what the decisioning may offer: the headline channel is the teller, all three are reported.
    report = json.loads(out.read_text())
    assert report["info"]["channel"] == "teller"
    assert list(report["channels"]) == ["teller", "call_centre", "mobile"]
    assert report["channels"]["teller"]["model"] == rows["model"]
    assert report["channels"]["mobile"]["model"]["ndcg"] != rows["model"]["ndcg"]
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_says_whether_it_promoted_and_warns_on_little_data(events: Path, tmp_path: Path, capsys) -> None:
    registry_dir = tmp_path / "models"
    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--json"]) == 0
    captured = capsys.readouterr()
    info = _last_json(captured.out)
    assert f"not promoted (the current model is unchanged; nbo promote {info['version']}" in captured.err
    # 1,500 simulated customers x 30 days give a few hundred labelled purchases: too few to trust.
    assert info["purchases"] < 1000
    assert f"warning: only {info['purchases']:,} purchases in the label windows" in captured.err
    assert f"label windows: 2 x 14 days before {info['cutoff']}" in captured.err

    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--promote"]) == 1
    err = capsys.readouterr().err
    assert "was not promoted: only" in err and "--force" in err
    assert ModelRegistry(registry_dir).current_version() is None
    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--promote", "--force"]) == 0
    err = capsys.readouterr().err
    current = ModelRegistry(registry_dir).current_version()
    assert f"promoted: {current} is now the current model (forced past the promotion gate; recorded)" in err


def test_train_refuses_to_promote_a_model_with_no_purchase(events: Path, tmp_path: Path, capsys) -> None:
    no_purchases = tmp_path / "no-purchases.jsonl"
    no_purchases.write_bytes(b"\n".join(raw for raw in events.read_bytes().splitlines()
                                        if b'"type":"purchase"' not in raw) + b"\n")
    registry_dir = tmp_path / "models"
    assert main(["train", "--events", str(no_purchases), "--registry", str(registry_dir), "--promote"]) == 2
    assert "no purchase in the label window(s)" in capsys.readouterr().err
    assert ModelRegistry(registry_dir).current_version() is None
    assert ModelRegistry(registry_dir).versions() == []


def test_promote_list_tells_versions_apart(events: Path, tmp_path: Path, capsys) -> None:
    registry_dir = tmp_path / "models"
    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--json", "--promote",
                 "--force"]) == 0
    info = _last_json(capsys.readouterr().out)
    assert main(["promote", "--list", "--registry", str(registry_dir)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[0]
    assert line.startswith(f"* {info['version']}  created ")
    assert f"{info['customers']:,} customers, {info['purchases']:,} purchases" in line
    assert f"catalog {CATALOG.content_hash()[:12]}" in line and "not the catalog in use" not in line
    assert "data 20" in line  # the label windows' dates
    assert "gate refused" in line and "FORCED past the gate" in line


def test_train_tunes_the_after_purchase_weight_and_saves_the_transitions(events: Path, tmp_path: Path,
                                                                          capsys) -> None:
    registry_dir = tmp_path / "models"
    assert main(["train", "--events", str(events), "--registry", str(registry_dir), "--json",
                 "--tune-similar-weight"]) == 0
    info = _last_json(capsys.readouterr().out)
    tuned = info["similar_weight_validation"]
    assert tuned["best"] in [float(w) for w in tuned["ndcg_at_3"]]
    model = ModelRegistry(registry_dir, CATALOG).load(info["version"])
    assert model.similar_weight == tuned["best"]  # the weight chosen on validation is the one that serves
    assert model.transitions is not None and model.transitions.shape == (len(CATALOG), len(CATALOG))
    assert model.metadata["after_purchase"]["triggers"] > 0


def test_evaluate_reports_recent_purchasers_apart(events: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report.json"
    assert main(["evaluate", "--events", str(events), "--json", "--out", str(out),
                 "--chart", str(tmp_path / "c.png")]) == 0
    capsys.readouterr()
    report = json.loads(out.read_text())
    recent, others = report["recency"]["recent_purchasers"], report["recency"]["others"]
    n = report["rows"]["model"]["customers"]
    assert recent["teller"]["model"]["customers"] + others["teller"]["model"]["customers"] == n
    assert set(recent["teller"]) >= {"model", "model_no_similar", "popularity", "oracle"}
    gain = report["info"]["similar_gain"]["recent_purchasers"]["teller"]
    assert gain["gain"] == pytest.approx(recent["teller"]["model"]["ndcg"] - recent["teller"]["model_no_similar"]["ndcg"])

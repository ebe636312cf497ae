"""A bank with little history and a backtest at a past date, through the command line: the default
training on ~50 purchases ranks no worse than popularity, promotion refuses it unless forced (and
the registry says it was forced), and on a simulated bank with two months of history the offers
the decisioning chain would have made at a date years ago beat popularity and segment popularity
on what customers bought next."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pytest

from adapters.model_registry import ModelRegistry
from domain.catalog import load_catalog
from services.cli import main
from simulator.bank import write_jsonl

CATALOG = load_catalog()


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def small_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 customers x 30 days: about 50 purchases in the two 14-day label windows."""
    path = tmp_path_factory.mktemp("small") / "events.jsonl"
    write_jsonl(path, CATALOG, customers=400, days=30, seed=3, progress=False)
    return path


def test_a_model_trained_on_few_purchases_ranks_like_popularity(small_bank: Path, tmp_path: Path, capsys) -> None:
    registry = tmp_path / "models"
    assert main(["train", "--events", str(small_bank), "--registry", str(registry), "--json"]) == 0
    captured = capsys.readouterr()
    info = _last_json(captured.out)
    assert 30 <= info["purchases"] <= 80
    chosen = info["label_windows"]
    assert (chosen["windows"], chosen["window_days"], chosen["enough"]) == (2, 14, False)  # all 30 days hold
    assert "label windows: 2 x 14 days" in captured.err
    assert info["promotion_gate"]["passed"] is False

    assert main(["evaluate", "--events", str(small_bank), "--json", "--out", str(tmp_path / "r.json"),
                 "--chart", str(tmp_path / "r.png")]) == 0
    rows = _last_json(capsys.readouterr().out)["rows"]
    model, popularity, segment = rows["model"], rows["popularity"], rows["segment_popularity"]
    n = model["customers"]
    assert n >= 15
    # Shrunk toward its segments' popularity, the model hits where segment popularity does (one
    # customer either way) and within two standard errors of popularity.
    assert abs(model["hit_rate"] - segment["hit_rate"]) <= 1 / n + 1e-9
    p = popularity["hit_rate"]
    assert model["hit_rate"] >= p - 2 * math.sqrt(p * (1 - p) / n)


def test_promotion_refuses_a_model_with_few_labels_unless_forced_and_records_it(small_bank: Path, tmp_path: Path,
                                                                               capsys) -> None:
    registry_dir = tmp_path / "models"
    assert main(["train", "--events", str(small_bank), "--registry", str(registry_dir), "--promote"]) == 1
    err = capsys.readouterr().err
    assert "was not promoted: only" in err and "labelled purchases" in err
    assert "Give a longer history" in err and "--force" in err
    registry = ModelRegistry(registry_dir, CATALOG)
    assert registry.current_version() is None
    refused = registry.versions()[0]  # saved, not served

    assert main(["promote", refused, "--registry", str(registry_dir)]) == 1
    assert f"{refused} is refused: only" in capsys.readouterr().err
    assert registry.current_version() is None

    assert main(["train", "--events", str(small_bank), "--registry", str(registry_dir), "--promote", "--force",
                 "--json"]) == 0
    forced = _last_json(capsys.readouterr().out)["version"]
    assert registry.current_version() == forced
    promotion = registry.metadata(forced)["promotion"]
    assert promotion["forced"] is True and "labelled purchases" in promotion["overrode"][0]

    assert main(["promote", refused, "--registry", str(registry_dir), "--force"]) == 0
    assert "forced past the promotion gate" in capsys.readouterr().out
    assert registry.current_version() == refused and registry.metadata(refused)["promotion"]["forced"] is True
    assert main(["promote", "--list", "--registry", str(registry_dir)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("gate refused" in line and "FORCED past the gate" in line for line in lines)


@pytest.fixture(scope="module")
def old_bank(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 customers (``nbo train``'s default simulation) x 60 days from 2021-01-01: years before
    today, with history before the as-of date and a horizon after it."""
    path = tmp_path_factory.mktemp("old") / "events.jsonl"
    write_jsonl(path, CATALOG, customers=5000, days=60, seed=1, start=datetime(2021, 1, 1, tzinfo=timezone.utc),
                progress=False)
    return path


def test_the_backtest_at_a_past_date_beats_popularity_and_segment_popularity(old_bank: Path, tmp_path: Path,
                                                                            capsys) -> None:
    out, chart = tmp_path / "backtest.json", tmp_path / "backtest.png"
    assert main(["backtest", "--events", str(old_bank), "--as-of", "2021-02-15", "--horizon", "14d", "--json",
                 "--out", str(out), "--chart", str(chart)]) == 0
    captured = capsys.readouterr()
    report = _last_json(captured.out)
    assert json.loads(out.read_text()) == report
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    info, rows = report["info"], report["rows"]
    assert info["as_of"] == "2021-02-15T00:00:00Z" and info["channel"] == "teller"
    # trained on what was known before the date: every label window ends by it, widened to 3 windows
    assert all(end <= "2021-02-15T00:00:00Z" for _, end in info["training"]["windows"])
    assert (info["label_windows"]["windows"], info["label_windows"]["window_days"]) == (3, 14)
    assert info["counted_customers"] >= 150
    offers = rows["offers"]
    for baseline in ("popularity", "segment_popularity"):
        assert offers["ndcg_at_3"] >= 1.15 * rows[baseline]["ndcg_at_3"], baseline
        assert offers["hit_rate_at_3"] >= 1.15 * rows[baseline]["hit_rate_at_3"], baseline
        assert offers["products_offered"] > rows[baseline]["products_offered"]
    # the table a user reads says the same
    table = captured.out.split("\nreport ")[0]
    first = next(line for line in table.splitlines() if line.startswith("offers "))
    assert f"{offers['ndcg_at_3']:.4f}" in first


def test_the_backtest_says_what_to_fix(old_bank: Path, capsys) -> None:
    assert main(["backtest", "--events", str(old_bank), "--as-of", "1990-01-01", "--horizon", "14d"]) == 2
    assert "the log starts later" in capsys.readouterr().err
    assert main(["backtest", "--events", str(old_bank), "--as-of", "2021-02-15", "--horizon", "soon"]) == 2
    assert "expected a positive duration" in capsys.readouterr().err

"""``NBO_CATALOG__PATH``: one setting names the catalog every process serves; a bad file stops
the start naming the variable, the file, the line and the column; every command's ``--catalog``
defaults to it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bank_catalog import BANK_IDS, GREEN_BOND_FUND, PACKAGED, csv_text, save
from bootstrap import SettingsError, build_trainer, catalog, load_settings
from bootstrap.root import catalog_source
from services.cli import command_parser, main


@pytest.fixture
def bank_file(tmp_path: Path) -> Path:
    path = tmp_path / "mybank.csv"
    save(path, csv_text())
    return path


def test_the_setting_is_read_from_the_environment(monkeypatch, bank_file):
    monkeypatch.setenv("NBO_CATALOG__PATH", str(bank_file))
    monkeypatch.setenv("NBO_CATALOG__POLL_S", "0.5")
    settings = load_settings()
    assert (settings.catalog.path, settings.catalog.poll_s) == (bank_file, 0.5)
    assert catalog(settings).ids == BANK_IDS
    assert build_trainer(settings).catalog.ids == BANK_IDS


def test_without_the_setting_the_packaged_catalog_serves(monkeypatch):
    monkeypatch.delenv("NBO_CATALOG__PATH", raising=False)
    assert catalog(load_settings()).content_hash() == PACKAGED.content_hash()


def test_a_bad_poll_interval_fails_at_start_with_its_name(monkeypatch):
    monkeypatch.setenv("NBO_CATALOG__POLL_S", "0")
    with pytest.raises(SettingsError, match="NBO_CATALOG__POLL_S"):
        load_settings()


@pytest.mark.parametrize("edit, line, column, reason", [
    (lambda text: text + GREEN_BOND_FUND.replace(",fund,2,", ",fund,7,") + "\n", 14, "risk_level",
     "risk_level must be in [1, 5], got 7"),
    (lambda text: text.replace("mass|affluent|high_net_worth|private", "mass|gold", 1), 2, "value_tiers",
     "value_tiers has unknown value(s) gold"),
    (lambda text: text + GREEN_BOND_FUND.replace("green_bond_fund", "Green Bond", 1) + "\n", 14, "product_id",
     "product_id 'Green Bond' must be snake_case"),
], ids=["risk-level", "tier", "product-id"])
def test_a_bad_file_named_by_the_setting_stops_the_start_naming_file_line_and_column(bank_file, edit, line,
                                                                                      column, reason):
    save(bank_file, edit(csv_text()))
    settings = load_settings(catalog={"path": bank_file})
    with pytest.raises(SettingsError) as failed:
        catalog_source(settings)
    message = str(failed.value)
    assert message.startswith(f"NBO_CATALOG__PATH: {bank_file}:{line}: ")
    assert column in message and reason in message
    with pytest.raises(SettingsError, match="NBO_CATALOG__PATH"):
        catalog(settings)


def test_a_missing_file_stops_the_start(tmp_path):
    with pytest.raises(SettingsError, match=r"NBO_CATALOG__PATH: .*nope\.csv: file not found"):
        catalog(load_settings(catalog={"path": tmp_path / "nope.csv"}))


@pytest.mark.parametrize("command", ["train", "evaluate", "tune", "promote", "simulate", "demo"])
def test_every_commands_catalog_option_says_it_defaults_to_the_setting(command):
    text = " ".join(command_parser(command).format_help().split())
    assert "--catalog CATALOG" in text
    assert "default: the file NBO_CATALOG__PATH names" in text


def test_simulate_writes_traffic_for_the_catalog_the_setting_names(monkeypatch, bank_file, tmp_path):
    monkeypatch.setenv("NBO_CATALOG__PATH", str(bank_file))
    out = tmp_path / "events.jsonl"
    assert main(["simulate", "--customers", "30", "--days", "2", "--out", str(out), "--quiet"]) == 0
    truth = json.loads(out.with_suffix(".truth.json").read_text(encoding="utf-8"))
    assert truth["meta"]["catalog_hash"] == catalog(load_settings()).content_hash()
    bought = {json.loads(line).get("product_id") for line in out.read_text(encoding="utf-8").splitlines()}
    assert bought - {None} <= set(BANK_IDS)

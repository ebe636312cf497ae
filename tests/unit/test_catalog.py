"""The packaged catalog loads, and a broken catalog fails naming the file, line and column."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from domain.catalog import (
    DEFAULT_CATALOG_PATH,
    CatalogError,
    FAMILIES,
    load_catalog,
    parse_catalog,
    value_tier_for_assets,
)
from schemas.events import PRODUCT_ID_PATTERN

RELIED_ON = (
    "demand_deposit time_deposit_1y large_cd payroll_service pension_service mobile_banking "
    "credit_card_standard credit_card_gold credit_card_platinum credit_card_travel money_market_fund "
    "bond_fund mixed_fund equity_fund fund_sip consumer_loan car_loan mortgage home_equity_loan "
    "small_business_loan agri_loan home_insurance protection_insurance annuity_insurance "
    "gold_accumulation wealth_r1 wealth_r2 wealth_r3 wealth_r4 wealth_r5"
).split()


def _lines() -> list[str]:
    return DEFAULT_CATALOG_PATH.read_text(encoding="utf-8").split("\n")


def _line_of(product_id: str) -> int:
    return next(n for n, line in enumerate(_lines(), start=1) if line.startswith(product_id + ","))


def test_packaged_catalog_has_about_forty_products_in_every_family() -> None:
    catalog = load_catalog()
    assert 35 <= len(catalog) <= 50
    assert {p.family for p in catalog.products} == set(FAMILIES)
    assert all(re.match(PRODUCT_ID_PATTERN, pid) for pid in catalog.ids)
    for pid in RELIED_ON:
        assert catalog.get(pid).product_id == pid
    assert catalog.index["demand_deposit"] == catalog.ids.index("demand_deposit")


def test_products_carry_what_decisioning_needs() -> None:
    catalog = load_catalog()
    assert catalog.get("large_cd").min_assets_minor == 20_000_000  # 200,000 CNY in fen
    assert catalog.get("wealth_r5").risk_level == 5 and "mass" not in catalog.get("wealth_r5").value_tiers
    assert catalog.get("pension_service").min_age >= 50
    assert catalog.get("fund_sip").multi_hold and not catalog.get("mortgage").multi_hold
    assert all(p.pitch_en.endswith(".") and p.pitch_zh for p in catalog.products)
    assert catalog.get("mortgage").annual_value_minor > catalog.get("mobile_banking").annual_value_minor


def test_unknown_product_is_a_key_error_with_a_message() -> None:
    with pytest.raises(KeyError, match="unknown product_id 'yacht_loan'"):
        load_catalog().get("yacht_loan")


def test_content_hash_ignores_comments_and_line_endings_but_not_products(tmp_path: Path) -> None:
    original = DEFAULT_CATALOG_PATH.read_text(encoding="utf-8")
    commented = tmp_path / "commented.csv"
    commented.write_text("# a note\r\n" + original.replace("\n", "\r\n"), encoding="utf-8")
    assert load_catalog(commented).content_hash() == load_catalog().content_hash()
    changed = tmp_path / "changed.csv"
    changed.write_text(original.replace(",90,\"A credit card with", ",91,\"A credit card with"), encoding="utf-8")
    assert load_catalog(changed).content_hash() != load_catalog().content_hash()


@pytest.mark.parametrize(
    ("product_id", "old", "new", "column"),
    [
        ("mortgage", ",loan,", ",boat,", "family"),
        ("wealth_r3", ",wealth,3,", ",wealth,7,", "risk_level"),
        ("large_cd", ",20000000,", ",lots,", "min_assets_minor"),
        ("bond_fund", "mass|affluent|high_net_worth", "mass|billionaire", "value_tiers"),
        ("debit_card", ",teller,180,", ",branch_robot,180,", "channels"),
        ("car_loan", ",false,", ",maybe,", "multi_hold"),
        ("agri_loan", ",18,65,", ",65,18,", "max_age"),
    ],
)
def test_invalid_row_names_file_line_and_column(tmp_path: Path, product_id: str, old: str, new: str, column: str) -> None:
    line_no = _line_of(product_id)
    lines = _lines()
    assert old in lines[line_no - 1]
    lines[line_no - 1] = lines[line_no - 1].replace(old, new, 1)
    bad = tmp_path / "catalog.csv"
    bad.write_text("\n".join(lines), encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(bad)
    assert info.value.line == line_no
    assert str(info.value).startswith(f"{bad}:{line_no}: ")
    assert column in info.value.reason


def test_duplicate_and_malformed_ids_and_short_rows_are_refused() -> None:
    header = ",".join(_lines()[_line_of("demand_deposit") - 2].split(","))
    row = _lines()[_line_of("demand_deposit") - 1]
    with pytest.raises(CatalogError, match=r"x.csv:3: duplicate product_id 'demand_deposit' \(first on line 2\)"):
        parse_catalog("\n".join([header, row, row]), "x.csv")
    with pytest.raises(CatalogError, match=r"x.csv:2: product_id 'Demand-Deposit'"):
        parse_catalog("\n".join([header, row.replace("demand_deposit", "Demand-Deposit", 1)]), "x.csv")
    with pytest.raises(CatalogError, match=r"x.csv:2: expected 15 columns, found 3"):
        parse_catalog("\n".join([header, "a,b,c"]), "x.csv")
    with pytest.raises(CatalogError, match=r"x.csv:1: missing column\(s\) pitch_zh"):
        parse_catalog(header.replace(",pitch_zh", ""), "x.csv")


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="nope.csv: file not found"):
        load_catalog(tmp_path / "nope.csv")


def test_value_tiers_follow_assets() -> None:
    assert value_tier_for_assets(0) == "mass"
    assert value_tier_for_assets(19_999_999) == "mass"
    assert value_tier_for_assets(20_000_000) == "affluent"
    assert value_tier_for_assets(100_000_000) == "high_net_worth"
    assert value_tier_for_assets(600_000_000) == "private"

"""The CatalogSource contract, against ``MemoryCatalogSource`` and the file-watching
``CatalogFile``: the bank's edit (a product launched, one retired) is served on the next
refresh; a bad edit is refused with the line and column, and the catalog in force keeps serving
until a good one replaces it; a bad first catalog stops the start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from adapters.catalog_file import CatalogFile
from adapters.fakes import MemoryCatalogSource
from adapters.ports import CatalogSource
from bank_catalog import BANK_IDS, GREEN_BOND_FUND, csv_text, save, without
from domain.catalog import CatalogError

BANK = csv_text()
LAUNCHED = csv_text(extra_rows=(GREEN_BOND_FUND,))
RETIRED = csv_text(without("bond_fund"))
#: The launched product with risk level 7 (R1..R5 only) on line 14: header, 12 rows, then it.
BAD = csv_text(extra_rows=(GREEN_BOND_FUND.replace(",fund,2,", ",fund,7,"),))


@dataclass
class CatalogBackend:
    """``open(text)`` builds the source from a first catalog file; ``change(source, text)`` is the
    bank saving an edited file."""

    open: Callable[[str], CatalogSource]
    change: Callable[[CatalogSource, str], None]


@pytest.fixture(params=["memory", "file"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> CatalogBackend:
    if request.param == "memory":
        return CatalogBackend(lambda text: MemoryCatalogSource(text, "catalog.csv"),
                              lambda source, text: source.set(text))  # type: ignore[attr-defined]
    path = tmp_path / "catalog.csv"

    def open_file(text: str) -> CatalogFile:
        save(path, text)
        return CatalogFile(path)

    return CatalogBackend(open_file, lambda source, text: save(path, text))


def test_the_first_catalog_serves_and_nothing_changes_without_an_edit(backend):
    source = backend.open(BANK)
    assert source.current.ids == BANK_IDS
    assert (source.refused, source.refusal) == (False, None)
    before = source.current
    assert source.refresh() is False
    assert source.current is before


def test_a_launched_product_is_served_after_one_refresh(backend):
    source = backend.open(BANK)
    backend.change(source, LAUNCHED)
    assert source.refresh() is True
    assert source.current.ids == (*BANK_IDS, "green_bond_fund")
    assert source.current.get("green_bond_fund").name_zh == "绿色债券基金"
    assert source.refresh() is False


def test_a_retired_product_is_gone_after_one_refresh(backend):
    source = backend.open(BANK)
    backend.change(source, RETIRED)
    assert source.refresh() is True
    assert "bond_fund" not in source.current and len(source.current) == len(BANK_IDS) - 1


def test_saving_the_same_content_again_swaps_nothing(backend):
    source = backend.open(BANK)
    before = source.current
    backend.change(source, "# saved again, with a comment\n" + BANK)  # comments do not count
    assert source.refresh() is False
    assert source.current is before


def test_a_bad_edit_is_refused_with_line_and_column_and_the_catalog_in_force_keeps_serving(backend):
    source = backend.open(BANK)
    before = source.current
    backend.change(source, BAD)
    assert source.refresh() is False
    assert source.current is before
    assert source.refused is True
    assert source.refusal is not None and source.refusal.endswith("catalog.csv:14: risk_level must be in [1, 5], got 7")
    assert source.refresh() is False  # the same bad edit is not retried (nor logged) again
    assert source.current is before

    backend.change(source, LAUNCHED)  # fixed
    assert source.refresh() is True
    assert "green_bond_fund" in source.current
    assert (source.refused, source.refusal) == (False, None)


def test_a_bad_first_catalog_stops_the_start(backend):
    with pytest.raises(CatalogError) as failed:
        backend.open(BAD)
    assert (failed.value.line, failed.value.column) == (14, "risk_level")

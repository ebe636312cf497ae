"""Small bank catalogs for the catalog tests: rows of the packaged catalog, and a product the
packaged catalog (and so every model trained on it) does not have."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from domain.catalog import Catalog, load_catalog
from recommender.model import ModelParams, NboModel, train_model

PACKAGED = load_catalog()

#: A bank that sells twelve of the packaged products.
BANK_IDS = ("demand_deposit", "time_deposit_1y", "time_deposit_3y", "large_cd", "wealth_r1", "wealth_r2",
            "bond_fund", "mixed_fund", "money_market_fund", "protection_insurance", "credit_card_gold",
            "mobile_banking")

#: A product launched after any model was trained: an R2 bond fund for every tier, on every channel.
GREEN_BOND_FUND = ("green_bond_fund,Green bond fund,绿色债券基金,fund,2,0,18,120,mass|affluent|high_net_worth|private,"
                   "300,true,teller|call_centre|mobile,45,A bond fund that invests in green projects.,"
                   "投资绿色项目的债券基金。")


def csv_text(ids: tuple[str, ...] = BANK_IDS, extra_rows: tuple[str, ...] = ()) -> str:
    """Catalog CSV with the packaged rows of ``ids`` (in that order) and then ``extra_rows``."""
    lines = PACKAGED.canonical_text.splitlines()
    rows = {line.split(",", 1)[0]: line for line in lines[1:]}
    return "\n".join([lines[0], *(rows[pid] for pid in ids), *extra_rows]) + "\n"


def without(product_id: str, ids: tuple[str, ...] = BANK_IDS) -> tuple[str, ...]:
    return tuple(pid for pid in ids if pid != product_id)


def save(path: Path, text: str) -> None:
    """Write ``text`` as an editor saving the file would, with a modification time later than the
    last save's even within the file system's clock tick."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    later = max(path.stat().st_mtime_ns, before + 1_000_000)
    os.utime(path, ns=(later, later))


def trained_for(catalog: Catalog, seed: int = 0) -> NboModel:
    """A small model trained on random data over ``catalog``'s products (under a second)."""
    rng = np.random.default_rng(seed)
    p = len(catalog)
    x = (rng.random((200, p + 1)) < 0.2) * rng.integers(1, 4, (200, p + 1))
    y = rng.random((200, p)) < 0.1
    single = np.array([not product.multi_hold for product in catalog.products])
    segments = list(rng.choice(["mass", "affluent"], 200))
    return train_model(x, y, segments, catalog.ids, ("hotline:loan_inquiry",), single,
                       ModelParams(factors=2, iterations=2), version="draft",
                       metadata={"catalog_hash": catalog.content_hash()})

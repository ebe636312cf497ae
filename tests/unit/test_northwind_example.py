"""The onboarding example's files agree with each other: the generator's product codes are the
mapping's and name exactly the catalog's products, its tables have the columns the mapping
reads, and the same arguments write the same bytes (docs/ONBOARDING.md)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from adapters.history_files import load_mapping
from domain.catalog import load_catalog
from simulator.northwind import BAD_ROWS, BANK_PRODUCTS, EXAMPLE_DIR, write_bank


def test_the_mapping_translates_every_product_code_of_the_extract_to_a_catalog_product():
    catalog = load_catalog(EXAMPLE_DIR / "catalog.csv")
    codes = load_mapping(EXAMPLE_DIR / "mapping.yaml").spec.tables["openings"].fields["product_id"].map
    assert codes == {code: product_id for product_id, code in BANK_PRODUCTS.values()}
    assert sorted(codes.values()) == sorted(catalog.ids)


def test_each_table_has_the_columns_its_mapping_reads_and_the_same_arguments_write_the_same_bytes(tmp_path: Path):
    mapping = load_mapping(EXAMPLE_DIR / "mapping.yaml")
    first = write_bank(tmp_path / "a", customers=40, days=10, seed=3)
    second = write_bank(tmp_path / "b", customers=40, days=10, seed=3)
    assert first == second and set(first) == {"customers.csv", "transactions.csv", "card_transactions.csv",
                                               "contact_centre_calls.csv", "product_openings.csv"}
    for name in first:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        table = mapping.table_for(Path(name))
        assert table is not None, name
        spec = mapping.spec.tables[table]
        needed = {c for f in spec.fields.values() for c in f.columns} | set(spec.key)
        columns = set(pl.read_csv(tmp_path / "a" / name, infer_schema_length=0).columns)
        assert needed <= columns, (name, needed - columns)
        if name in BAD_ROWS:
            assert set(BAD_ROWS[name]) == columns

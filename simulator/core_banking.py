"""A simulated bank's history as a core-banking extract: the tables a bank's warehouse hands
over before the first live event, in the shapes ``examples/core_banking/mapping.yaml`` maps.

``write_extract(events, out_dir)`` reads a JSONL event log (``nbo simulate``) and writes

- ``transactions.csv`` (deposits and withdrawals): account, reference, customer number, local
  posting date and time (Asia/Shanghai), amount as decimal text, debit/credit flag, currency,
  channel code, transaction code, branch, balance after;
- ``cards.csv`` (card payments): card token, customer number, authorisation id, local time
  ``YYYYMMDDhhmmss``, MCC, amount, currency, merchant country, e-commerce flag, hotel stars,
  luxury flag;
- ``holdings.csv`` (products opened): customer number, account, product code, opening time,
  amount, channel code;
- ``contract.jsonl``: the other events (KYC profiles, hotline calls) as contract rows.

Imported through the mapping, the extract gives back the simulated events (with ids derived
from each row's key), which is what ``tests/integration/test_import_history.py`` checks.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from domain.catalog import Catalog

LOCAL_ZONE = "Asia/Shanghai"
CHANNEL_CODES = {"counter": "TLR", "atm": "ATM", "mobile": "MOB", "transfer": "TRF"}
TXN_CODES = {"salary": "SAL01", "pension": "PEN01", "cash": "CSH01", "transfer": "TRF01",
             "bill_payment": "BIL01", "loan_repayment": "LNR01", "investment": "INV01", "other": "MSC01"}
PURCHASE_CHANNEL_CODES = {"branch": "BR", "call_centre": "CC", "mobile": "MB", "online": "OL",
                          "relationship_manager": "RM"}


def product_code(product_id: str) -> str:
    """The extract's product code of a catalog product: ``time_deposit_1y`` -> ``TIME-DEPOSIT-1Y``."""
    return product_id.upper().replace("_", "-")


def product_codes(catalog: Catalog) -> dict[str, str]:
    """Product code -> catalog product id, for every product of ``catalog`` (the mapping's map)."""
    return {product_code(p.product_id): p.product_id for p in catalog}


def _decimal(minor: pl.Expr) -> pl.Expr:
    """Integer minor units -> decimal text with 2 places (``-1234`` -> ``-12.34``)."""
    sign = pl.when(minor < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    magnitude = minor.abs()
    return pl.concat_str([sign, (magnitude // 100).cast(pl.String), pl.lit("."),
                          (magnitude % 100).cast(pl.String).str.zfill(2)])


def _local(column: str) -> pl.Expr:
    return (pl.col(column).str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ")
            .dt.convert_time_zone(LOCAL_ZONE))


def write_extract(events: Path, out_dir: Path) -> dict[str, int]:
    """Write the extract's files for a JSONL event log; returns rows written per file name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = pl.read_ndjson(events, infer_schema_length=None)
    counts: dict[str, int] = {}
    cust = pl.col("customer_id").str.slice(1)

    deposits = frame.filter(pl.col("type") == "deposit").select(
        pl.concat_str([pl.lit("62"), cust]).alias("account_no"),
        pl.col("event_id").str.replace_all(r"[^0-9A-Za-z]", "").alias("txn_ref"),
        cust.alias("cust_no"),
        _local("occurred_at").dt.strftime("%Y-%m-%d").alias("posting_date"),
        _local("occurred_at").dt.strftime("%H:%M:%S").alias("posting_time"),
        _decimal(pl.col("amount_minor")).alias("amount"),
        pl.when(pl.col("kind") == "deposit").then(pl.lit("C")).otherwise(pl.lit("D")).alias("dc_flag"),
        pl.col("currency"),
        pl.col("channel").replace_strict(CHANNEL_CODES).alias("channel_code"),
        pl.col("purpose").replace_strict(TXN_CODES).alias("txn_code"),
        pl.col("branch_id").alias("branch_code"),
        _decimal(pl.col("balance_after_minor")).alias("balance_after"))
    deposits.write_csv(out_dir / "transactions.csv")
    counts["transactions.csv"] = deposits.height

    cards = frame.filter(pl.col("type") == "pos").select(
        pl.col("card_token").str.slice(4).alias("card_token"),
        cust.alias("cust_no"),
        pl.col("event_id").str.replace_all(r"[^0-9A-Za-z]", "").alias("auth_id"),
        _local("occurred_at").dt.strftime("%Y%m%d%H%M%S").alias("txn_datetime"),
        pl.col("mcc"),
        _decimal(pl.col("amount_minor")).alias("amount"),
        pl.col("currency"),
        pl.col("country").alias("merchant_country"),
        pl.when(pl.col("online")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("ecom_flag"),
        pl.col("hotel_stars").alias("star_rating"),
        pl.when(pl.col("luxury")).then(pl.lit("Y")).otherwise(pl.lit("N")).alias("luxury_flag"))
    cards.write_csv(out_dir / "cards.csv")
    counts["cards.csv"] = cards.height

    holdings = frame.filter(pl.col("type") == "purchase").select(
        cust.alias("cust_no"),
        pl.col("event_id").str.replace_all(r"[^0-9A-Za-z]", "").alias("account_no"),
        pl.col("product_id").str.to_uppercase().str.replace_all("_", "-", literal=True).alias("product_code"),
        _local("occurred_at").dt.strftime("%Y-%m-%d %H:%M:%S").alias("open_ts"),
        _decimal(pl.col("amount_minor")).alias("amount"),
        pl.col("currency"),
        pl.col("channel").replace_strict(PURCHASE_CHANNEL_CODES).alias("channel_code"))
    holdings.write_csv(out_dir / "holdings.csv")
    counts["holdings.csv"] = holdings.height

    rest = 0
    with open(events, "rb") as source, open(out_dir / "contract.jsonl", "wb") as target:
        for line in source:
            if b'"type":"profile"' in line or b'"type":"hotline"' in line:
                target.write(line)
                rest += 1
    counts["contract.jsonl"] = rest
    return counts

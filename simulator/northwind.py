"""Northwind Savings: a made-up retail bank in Berlin (EUR) whose core-banking extract is the
worked example of bringing a bank's own data (docs/ONBOARDING.md, examples/onboarding/).

    python -m simulator.northwind --out examples/onboarding/extract            # 3,000 customers, 2 years
    python -m simulator.northwind --out /tmp/nw --customers 800 --end 2026-11-30

The behaviour comes from the simulated bank (``simulator.bank``): purchases follow needs that
show in behaviour first (a loan or mortgage inquiry on the phone, a large inflow, travel spend),
co-ownership and after-purchase effects, so the history carries real signal. The simulation
runs on packaged products that stand for Northwind's twelve (``BANK_PRODUCTS``) plus three
everyday ones the bank does not sell through the engine (``SIM_ONLY``: a salary account, the
debit card, the app; they drive salary credits and card spend, and their openings are not in
the extract). Its events are then re-shaped into Northwind's own tables, ids and codes:

- ``customers.csv`` (KYC master data): ``customer_no`` (an integer), birth year, risk class
  ``RK1``..``RK5`` from the suitability questionnaire, occupation and region codes, declared
  income band ``1``..``5``, the KYC time; about 6 % have no risk class and 3 % no birth year;
- ``transactions.csv`` (account postings): signed amount in EUR (``-`` for a debit), German
  dates (``31.10.2026``) and local times (Europe/Berlin), channel and transaction-type codes;
- ``card_transactions.csv`` (card switch): the amount in the merchant's currency (EUR, and USD,
  GBP, CHF abroad, at the rate table's rates), a card reference, MCC, card-present flag;
- ``contact_centre_calls.csv`` (the phone line's call log): topic codes, duration, resolution,
  speech-analytics sentiment;
- ``product_openings.csv``: every contract opened, with Northwind's product codes.

``examples/onboarding/mapping.yaml`` maps these tables to events. Customer ``n`` is simulated
customer ``n`` (``customer_no`` ``123`` is ``CUST-000123`` once mapped). Money: the simulated
bank's amounts divided by ``AMOUNT_DIVISOR`` are euro amounts (a salary of 20,000 becomes
5,000 EUR). Same arguments, same bytes.

``with_bad_rows`` (default true) appends one deliberately bad row each to the transactions,
card and openings tables (``BAD_ROWS``), for the rejects file of the example.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import numpy as np
import polars as pl

from domain.catalog import Catalog, load_catalog, parse_catalog
from domain.money import load_rates
from simulator.bank import Simulator

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "onboarding"
LOCAL_ZONE = "Europe/Berlin"
DEFAULT_CUSTOMERS = 3_000
DEFAULT_DAYS = 730
DEFAULT_SEED = 11
DEFAULT_END = date(2026, 11, 30)
#: The simulated bank's amounts (minor units) over this are euro cents.
AMOUNT_DIVISOR = 4

#: Simulated (packaged) product -> (Northwind product id, Northwind product code in the extract).
BANK_PRODUCTS: dict[str, tuple[str, str]] = {
    "demand_deposit": ("current_account", "GIRO"),
    "time_deposit_1y": ("fixed_term_1y", "FG-12M"),
    "large_cd": ("premium_fixed_term", "FG-PREMIUM"),
    "bond_fund": ("euro_bond_fund", "FONDS-RENTE"),
    "fund_sip": ("fund_savings_plan", "FONDS-SPARPLAN"),
    "credit_card_standard": ("classic_credit_card", "KK-CLASSIC"),
    "credit_card_travel": ("travel_credit_card", "KK-TRAVEL"),
    "card_instalment": ("card_instalment_plan", "KK-TEILZAHLUNG"),
    "consumer_loan": ("personal_loan", "RATENKREDIT"),
    "mortgage": ("home_loan", "BAUFI"),
    "home_insurance": ("home_contents_insurance", "HAUSRAT"),
    "protection_insurance": ("term_life_insurance", "RISIKO-LV"),
}
#: Simulated products that shape behaviour but are not in Northwind's catalog or extract.
SIM_ONLY = ("payroll_service", "debit_card", "mobile_banking")

#: The simulated bank's merchant countries -> Northwind's (home: Germany).
COUNTRIES = {"CN": "DE", "JP": "CH", "TH": "AT", "SG": "IT", "KR": "ES", "US": "US", "FR": "FR",
             "GB": "GB", "AU": "NL"}
#: Merchant country -> currency of the card payment (else EUR).
COUNTRY_CURRENCY = {"US": "USD", "GB": "GBP", "CH": "CHF"}

DEPOSIT_CHANNEL_CODES = {"counter": "BRANCH", "atm": "ATM", "mobile": "APP", "transfer": "SEPA"}
TXN_TYPE_CODES = {"salary": "GEH", "pension": "RNT", "cash": "BAR", "transfer": "UEB", "bill_payment": "LS",
                  "loan_repayment": "KRD", "investment": "WP", "other": "SON"}
OPENING_CHANNEL_CODES = {"branch": "FILIALE", "call_centre": "TELEFON", "mobile": "APP", "online": "WEB",
                         "relationship_manager": "BERATER"}
CALL_TOPIC_CODES = {"balance_query": "KONTOSTAND", "lost_card": "KARTENSPERRE", "card_limit": "KARTENLIMIT",
                    "loan_inquiry": "KREDIT", "mortgage_inquiry": "BAUFI", "wealth_inquiry": "ANLAGE",
                    "fund_inquiry": "FONDS", "insurance_inquiry": "VERSICHERUNG", "complaint": "BESCHWERDE",
                    "transfer_help": "UEBERWEISUNG", "other": "SONSTIGES"}
OCCUPATION_CODES = {"salaried": "ANG", "self_employed": "SELB", "business_owner": "UNT", "retired": "RENT",
                    "farmer": "LW", "student": "STUD", "other": "SONST"}
REGION_CODES = {1: "METRO", 2: "STADT", 3: "KLEINSTADT", 4: "LAND"}
NO_RISK_CLASS_SHARE = 0.06
NO_BIRTH_YEAR_SHARE = 0.03

#: One deliberately bad row per table (appended last): what the rejects file of the example shows.
BAD_ROWS = {
    # a customer number with seven digits: outside the bank's pattern CUST-[0-9]{6}
    "transactions.csv": {"account_id": "NW1234567-01", "booking_ref": "BADROW0001", "customer_no": "1234567",
                         "booking_date": "02.11.2025", "booking_time": "10:15:00", "amount": "250.00",
                         "currency": "EUR", "channel": "BRANCH", "txn_type": "BAR", "branch": "NW0042",
                         "balance": "1250.00"},
    # a payment in Swedish kronor: the rate table has no SEK
    "card_transactions.csv": {"card_ref": "d0000000001", "customer_no": "7", "auth_code": "BADROW0002",
                              "auth_time": "2025-07-14T19:02:11", "mcc": "5812", "amount": "412.00",
                              "currency": "SEK", "merchant_country": "SE", "card_present": "1", "hotel_stars": "0",
                              "premium_merchant": "N"},
    # a product code the mapping does not know (a product Northwind does not offer through the engine)
    "product_openings.csv": {"customer_no": "42", "contract_no": "BADROW0003", "product_code": "ROBO-DEPOT",
                             "opened_at": "2025-03-03 11:20:00", "amount": "5000.00", "channel": "APP"},
}


def simulation_catalog() -> Catalog:
    """The packaged products the simulation runs on: ``BANK_PRODUCTS`` and ``SIM_ONLY``."""
    packaged = load_catalog()
    lines = packaged.canonical_text.splitlines()
    rows = {line.split(",", 1)[0]: line for line in lines[1:]}
    ids = (*BANK_PRODUCTS, *SIM_ONLY)
    return parse_catalog("\n".join([lines[0], *(rows[pid] for pid in ids)]) + "\n", "northwind-simulation")


def _eur(minor: pl.Expr) -> pl.Expr:
    """Simulated minor units -> euro cents (rounded half up)."""
    return (minor + AMOUNT_DIVISOR // 2) // AMOUNT_DIVISOR


def _decimal(minor: pl.Expr) -> pl.Expr:
    """Integer cents -> decimal text with 2 places (``-1234`` -> ``-12.34``)."""
    sign = pl.when(minor < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    magnitude = minor.abs()
    return pl.concat_str([sign, (magnitude // 100).cast(pl.String), pl.lit("."),
                          (magnitude % 100).cast(pl.String).str.zfill(2)])


def _local(column: str = "occurred_at") -> pl.Expr:
    return (pl.col(column).str.strptime(pl.Datetime("us", "UTC"), "%Y-%m-%dT%H:%M:%SZ")
            .dt.convert_time_zone(LOCAL_ZONE))


def _ref(column: str = "event_id") -> pl.Expr:
    return pl.col(column).str.replace_all(r"[^0-9A-Za-z]", "")


def _customer_no() -> pl.Expr:
    return pl.col("customer_id").str.slice(1).cast(pl.Int64).cast(pl.String).alias("customer_no")


def _bands(income_minor: np.ndarray) -> np.ndarray:
    """Declared income band 1..5: the quintiles of declared income among the bank's customers."""
    edges = np.quantile(income_minor, [0.2, 0.4, 0.6, 0.8])
    return np.searchsorted(edges, income_minor, side="right") + 1


def _simulate(log: Path, customers: int, days: int, seed: int, start: datetime) -> Simulator:
    sim = Simulator(simulation_catalog(), customers, seed, start)
    with open(log, "wb") as handle:
        for batch in sim.run(days):
            if batch.records:
                handle.write(b"\n".join(batch.records) + b"\n")
    return sim


def write_bank(out_dir: Path, customers: int = DEFAULT_CUSTOMERS, days: int = DEFAULT_DAYS,
               seed: int = DEFAULT_SEED, end: date = DEFAULT_END, rates_file: Path | None = None,
               with_bad_rows: bool = True) -> dict[str, int]:
    """Write Northwind's extract into ``out_dir``: ``days`` days of behaviour ending at midnight
    UTC of ``end`` (exclusive), openings and KYC records from before. Returns rows per file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rates = load_rates(rates_file or EXAMPLE_DIR / "rates.csv", "EUR")
    start = datetime.combine(end, time(0), tzinfo=timezone.utc) - timedelta(days=days)
    with tempfile.TemporaryDirectory(prefix="northwind-") as tmp:
        log = Path(tmp) / "events.jsonl"
        sim = _simulate(log, customers, days, seed, start)
        frame = pl.read_ndjson(log, infer_schema_length=None)
    counts: dict[str, int] = {}

    def write(name: str, table: pl.DataFrame) -> None:
        table.write_csv(out_dir / name)
        counts[name] = table.height

    # customers.csv: the KYC record of each customer, with the gaps a real one has.
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 71])))
    n = sim.n
    no_risk = rng.random(n) < NO_RISK_CLASS_SHARE
    no_birth = rng.random(n) < NO_BIRTH_YEAR_SHARE
    bands = _bands(sim.income_minor)
    extra = pl.DataFrame({
        "customer_no": [str(i) for i in range(n)],
        "no_risk": no_risk, "no_birth": no_birth, "income_band": [str(b) for b in bands.tolist()]})
    profiles = frame.filter(pl.col("type") == "profile").select(
        _customer_no(),
        pl.col("birth_year").cast(pl.String),
        pl.concat_str([pl.lit("RK"), pl.col("risk_tolerance").cast(pl.String)]).alias("risk_class"),
        pl.col("employment").replace_strict(OCCUPATION_CODES).alias("occupation"),
        pl.col("city_tier").replace_strict(REGION_CODES, return_dtype=pl.String).alias("region"),
        _local().dt.strftime("%Y-%m-%d %H:%M:%S").alias("kyc_updated_at"),
    ).join(extra, on="customer_no", how="left", maintain_order="left").select(
        "customer_no",
        pl.when(pl.col("no_birth")).then(None).otherwise(pl.col("birth_year")).alias("birth_year"),
        pl.when(pl.col("no_risk")).then(None).otherwise(pl.col("risk_class")).alias("risk_class"),
        "occupation", "region", "income_band", "kyc_updated_at")
    write("customers.csv", profiles)

    deposits = frame.filter(pl.col("type") == "deposit")
    signed = pl.when(pl.col("kind") == "withdrawal").then(-_eur(pl.col("amount_minor"))).otherwise(
        _eur(pl.col("amount_minor")))
    write("transactions.csv", deposits.select(
        pl.concat_str([pl.lit("NW"), pl.col("customer_id").str.slice(4), pl.lit("-01")]).alias("account_id"),
        _ref().alias("booking_ref"),
        _customer_no(),
        _local().dt.strftime("%d.%m.%Y").alias("booking_date"),
        _local().dt.strftime("%H:%M:%S").alias("booking_time"),
        _decimal(signed).alias("amount"),
        pl.lit("EUR").alias("currency"),
        pl.col("channel").replace_strict(DEPOSIT_CHANNEL_CODES).alias("channel"),
        pl.col("purpose").replace_strict(TXN_TYPE_CODES).alias("txn_type"),
        pl.col("branch_id").str.replace("^BR", "NW").alias("branch"),
        _decimal(_eur(pl.col("balance_after_minor"))).alias("balance")))

    country = pl.col("country").replace_strict(COUNTRIES)
    cards = frame.filter(pl.col("type") == "pos").with_columns(
        country.alias("merchant_country"),
        country.replace_strict(COUNTRY_CURRENCY, default="EUR").alias("currency"),
        _eur(pl.col("amount_minor")).alias("eur_minor"))
    inverse = {code: float(1 / rates.rate(code)) for code in COUNTRY_CURRENCY.values()}
    local_minor = (pl.col("eur_minor") * pl.col("currency").replace_strict(inverse, default=1.0)).round(0) \
        .cast(pl.Int64).clip(lower_bound=1)
    write("card_transactions.csv", cards.select(
        pl.col("card_token").str.slice(4).alias("card_ref"),
        _customer_no(),
        _ref().alias("auth_code"),
        _local().dt.strftime("%Y-%m-%dT%H:%M:%S").alias("auth_time"),
        pl.col("mcc"),
        _decimal(local_minor).alias("amount"),
        pl.col("currency"),
        pl.col("merchant_country"),
        pl.when(pl.col("online")).then(pl.lit("0")).otherwise(pl.lit("1")).alias("card_present"),
        pl.col("hotel_stars").cast(pl.String),
        pl.when(pl.col("luxury")).then(pl.lit("J")).otherwise(pl.lit("N")).alias("premium_merchant")))

    write("contact_centre_calls.csv", frame.filter(pl.col("type") == "hotline").select(
        _ref().alias("call_id"),
        _customer_no(),
        _local().dt.strftime("%Y-%m-%d %H:%M:%S").alias("call_start"),
        pl.col("intent").replace_strict(CALL_TOPIC_CODES).alias("topic"),
        pl.col("duration_s").cast(pl.String).alias("duration_s"),
        pl.when(pl.col("resolved")).then(pl.lit("J")).otherwise(pl.lit("N")).alias("resolved"),
        pl.col("sentiment").round(2).cast(pl.String).alias("sentiment")))

    codes = {sim_id: code for sim_id, (_, code) in BANK_PRODUCTS.items()}
    write("product_openings.csv", frame.filter(pl.col("type") == "purchase")
          .filter(pl.col("product_id").is_in(list(codes))).select(
        _customer_no(),
        _ref().alias("contract_no"),
        pl.col("product_id").replace_strict(codes).alias("product_code"),
        _local().dt.strftime("%Y-%m-%d %H:%M:%S").alias("opened_at"),
        _decimal(_eur(pl.col("amount_minor"))).alias("amount"),
        pl.col("channel").replace_strict(OPENING_CHANNEL_CODES).alias("channel")))

    if with_bad_rows:
        for name, row in BAD_ROWS.items():
            with open(out_dir / name, "a", encoding="utf-8", newline="") as handle:
                csv.DictWriter(handle, fieldnames=list(row), lineterminator="\n").writerow(row)
            counts[name] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m simulator.northwind", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=EXAMPLE_DIR / "extract", help="directory of the extract")
    parser.add_argument("--customers", type=int, default=DEFAULT_CUSTOMERS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of behaviour (default 730: two years)")
    parser.add_argument("--end", type=date.fromisoformat, default=DEFAULT_END,
                        help="the history ends at midnight UTC starting this day (default 2026-11-30)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-bad-rows", action="store_true", help="leave out the deliberately bad rows")
    args = parser.parse_args(argv)
    counts = write_bank(args.out, args.customers, args.days, args.seed, args.end, with_bad_rows=not args.no_bad_rows)
    for name, rows in counts.items():
        print(f"{args.out / name}: {rows:,} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())

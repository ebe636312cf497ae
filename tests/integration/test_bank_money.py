"""A worker set up for a bank of its own on the real broker and Redis: base currency EUR with
the bank's rate table, its own customer id format and history from before 2000. Deposits in USD
and CNY end up in the state as EUR amounts; a currency the table has no rate for, an id outside
the bank's format and a time before its earliest are dead-lettered, each naming its field."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import orjson
import pytest
from kafka import KafkaProducer

from adapters.redis_store import RedisStateStore
from schemas.topics import DEPOSITS
from services.runtime import ManagedProcess, child_env, nbo_command
from tests.integration.test_stream_dead_letters import DeadLetters, wait_for

pytestmark = pytest.mark.integration

RATES = """# into EUR
currency,rate
EUR,1
USD,0.92
CNY,0.13
JPY,0.0062
"""


def deposit(event_id: str, customer_id: str, amount_minor: int, currency: str, balance_after_minor: int,
            at: str = "2026-05-01T08:00:00Z") -> bytes:
    return orjson.dumps({"event_id": event_id, "schema_version": 1, "customer_id": customer_id, "occurred_at": at,
                         "source": "core_banking", "type": "deposit", "kind": "deposit", "amount_minor": amount_minor,
                         "currency": currency, "channel": "counter", "purpose": "cash",
                         "balance_after_minor": balance_after_minor})


def test_a_worker_with_base_currency_eur_keeps_eur_amounts_and_dead_letters_what_it_cannot_convert(
        servers, tmp_path: Path, key_prefix):
    tag = uuid.uuid4().hex[:6].upper()
    customer, old_customer = f"CUST-{tag}-1", f"CUST-{tag}-2"
    rates = tmp_path / "rates.csv"
    rates.write_text(RATES)
    good = [  # 2,000.00 USD = 1,840.00 EUR; 10,000.00 CNY = 1,300.00 EUR, balance 12,000.00 CNY = 1,560.00 EUR
        (customer, deposit(f"ev-{tag}-usd", customer, 200_000, "USD", 200_000, "2026-05-01T08:00:00Z")),
        (customer, deposit(f"ev-{tag}-cny", customer, 1_000_000, "CNY", 1_200_000, "2026-05-01T09:00:00Z")),
        (old_customer, deposit(f"ev-{tag}-1998", old_customer, 5_000, "JPY", 5_000, "1998-07-01T08:00:00Z")),
    ]
    refused = [  # (key, value, the field its letter names, a text its reason holds)
        (customer, deposit(f"ev-{tag}-gbp", customer, 10_000, "GBP", 10_000), "currency", "'GBP'"),
        (f"C{tag}0042", deposit(f"ev-{tag}-id", f"C{tag}0042", 10_000, "EUR", 10_000), "customer_id", "CUST-"),
        (customer, deposit(f"ev-{tag}-1989", customer, 10_000, "EUR", 10_000, "1989-12-31T00:00:00Z"),
         "occurred_at", "1990-01-01"),
    ]
    letters = DeadLetters(servers.kafka_bootstrap)
    letters.poll()
    producer = KafkaProducer(bootstrap_servers=servers.kafka_bootstrap, acks="all")
    for key, value in good:
        producer.send(DEPOSITS, key=key.encode(), value=value).get(timeout=30)
    sources = {}
    for key, value, field, says in refused:
        meta = producer.send(DEPOSITS, key=key.encode(), value=value).get(timeout=30)
        sources[(DEPOSITS, meta.partition, meta.offset)] = (field, says)
    producer.close()

    env = child_env(servers, NBO_REDIS__KEY_PREFIX=key_prefix, NBO_STREAM__GROUP_ID=f"g-{key_prefix}",
                    NBO_DATA_DIR=str(tmp_path / "data"), NBO_MONEY__BASE_CURRENCY="EUR",
                    NBO_MONEY__RATES_FILE=str(rates), NBO_MONEY__LARGE_INFLOW_MINOR="150000",
                    NBO_CONTRACT__CUSTOMER_ID_PATTERN="CUST-[0-9A-F]{6}-[0-9]+",
                    NBO_CONTRACT__EARLIEST_OCCURRED_AT="1990-01-01T00:00:00Z")
    worker = ManagedProcess("worker", nbo_command("worker"), tmp_path / "worker.log", env=env)
    store = RedisStateStore(servers.redis_url, key_prefix)
    worker.start()
    try:
        # The session's own worker (the stack's, under the default rules) may read these records
        # too and dead-letter them for its own reasons: wait for this worker's letter for each.
        seen: dict[tuple[str, int, int], list[dict]] = {}

        def this_workers_letters() -> list[dict] | None:
            for letter in letters.from_any_source(set(sources)):
                source = letter["source"]
                seen.setdefault((source["topic"], source["partition"], source["offset"]), []).append(letter)
            found = [next((x for x in seen.get(where, []) if x["field"] == field and says in x["reason"]), None)
                     for where, (field, says) in sources.items()]
            return found if all(found) else None

        mine = wait_for(this_workers_letters, "the dead letters", worker)
        state = wait_for(lambda: (s := store.get(customer)) is not None and s.events_applied == 2 and s,
                         "both deposits applied", worker)
        old = wait_for(lambda: store.get(old_customer), "the 1998 deposit applied", worker)
    finally:
        worker.stop()
        store.close()
        letters.consumer.close()

    # What the offer API and the agent screen read: EUR cents.
    assert state.balance_minor == 156_000
    assert state.daily_flows["2026-05-01"] == [184_000 + 130_000, 0]
    assert [t[2] for t in state.recent_transactions] == [130_000, 184_000]
    assert state.last_large_inflow_at_s > 0  # 1,840 EUR clears the bank's 1,500 EUR threshold
    assert old.balance_minor == 3_100  # 5,000 JPY in 1998 (rate of today's table: 31.00 EUR)
    for letter in mine:
        source = letter["source"]
        field, says = sources[(source["topic"], source["partition"], source["offset"])]
        assert letter["field"] == field and says in letter["reason"], letter

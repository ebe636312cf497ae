"""Rows checked against the event contract in bulk: the validation step of ``nbo import``.

``check_lines`` takes candidate events as JSON (one object a row), validates each with the
contract's own pydantic models (``schemas.events.AnyEvent``, the models ``schemas.codec.decode``
validates with: no rule is written twice) and re-encodes the valid ones with
``schemas.codec.encode``, so what is stored is byte for byte what a producer would have sent.
It imports neither polars nor Redis, so it is cheap to start in a worker process (``nbo import``
runs it in a process pool over chunks of rows).

The JSON is validated with ``TypeAdapter.validate_json`` (the JSON goes to pydantic-core as it
is): about 8 us per event against 14 us for ``orjson.loads`` then ``validate_python`` as
``decode`` does; ``tests/unit/test_import_validation.py`` checks that both accept and refuse the
same rows with the same reasons.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Sequence

import pyarrow as pa
from pydantic import TypeAdapter, ValidationError

from domain.money import ExchangeRates, UnknownRate, in_base_currency
from schemas.codec import MAX_EVENT_BYTES, encode, invalid_from
from schemas.events import AnyEvent, Event
from schemas.rules import DEFAULT_RULES, ContractRules

_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_WITH_PRODUCT = frozenset({"purchase", "offer_outcome"})

#: The columns of a checked chunk (``CheckedRows.valid``), the training store's row without ``seq``.
VALID_SCHEMA = pa.schema([
    ("index", pa.int64()),  # position of the row in the chunk
    ("customer_id", pa.string()),
    ("occurred_at_us", pa.int64()),  # UTC epoch microseconds
    ("type", pa.string()),
    ("event_id", pa.string()),
    ("product_id", pa.string()),  # purchases and offer outcomes; null otherwise
    ("event", pa.binary()),  # schemas.codec.encode of the validated event
])


@dataclass
class CheckedRows:
    """The valid rows as Arrow columns (``VALID_SCHEMA``) and the refused ones as
    ``(index, field, reason, the line as given)``."""

    valid: pa.RecordBatch
    refused: list[tuple[int, str, str, bytes]] = field(default_factory=list)


def event_id_for(prefix: str, key: str) -> str:
    """The event id of a source row: ``prefix`` and 32 hex digits of BLAKE2b over the row's key
    (the mapping's key columns joined): the same row always gives the same id."""
    return prefix + hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


def check_lines(lines: Sequence[bytes], keys: Sequence[str] | None = None, id_prefix: str = "",
                rules: ContractRules = DEFAULT_RULES, rates: ExchangeRates | None = None) -> CheckedRows:
    """Validate every line (a JSON object) under the bank's contract ``rules`` (customer id
    pattern, card-number check, earliest event time: those the stream decodes with). With
    ``keys``, each line gets the event id ``event_id_for(id_prefix, keys[i])`` put in front of its
    fields first (the line must not carry one). With ``rates``, a row in a currency the bank's rate
    table has no rate for is refused naming the currency (the stream would dead-letter it); what is
    stored keeps the row's own currency (the fold converts, as the stream does)."""
    index: list[int] = []
    customers: list[str] = []
    times: list[int] = []
    types: list[str] = []
    ids: list[str] = []
    products: list[str | None] = []
    events: list[bytes] = []
    refused: list[tuple[int, str, str, bytes]] = []
    validate = _ADAPTER.validate_json
    context = rules.context
    blake = hashlib.blake2b
    prefix = id_prefix.encode("ascii")
    for i, line in enumerate(lines):
        if keys is not None:
            digest = blake(keys[i].encode("utf-8"), digest_size=16).hexdigest().encode("ascii")
            line = b'{"event_id":"' + prefix + digest + b'",' + line[1:] if len(line) > 2 else line
        if len(line) > MAX_EVENT_BYTES:
            refused.append((i, "record", f"record is {len(line)} bytes, the limit is {MAX_EVENT_BYTES}", line))
            continue
        try:
            event = validate(line, context=context)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            if first["type"] == "json_invalid":  # what decode says of it
                refused.append((i, "record", f"not valid JSON ({first['msg']})", line))
            elif not line.lstrip().startswith(b"{"):
                refused.append((i, "record", "an event must be a JSON object", line))
            else:
                invalid = invalid_from(exc)
                refused.append((i, invalid.field or "record", invalid.reason, line))
            continue
        if rates is not None:
            try:
                in_base_currency(event, rates)
            except UnknownRate as exc:
                refused.append((i, "currency", str(exc), line))
                continue
        index.append(i)
        customers.append(event.customer_id)
        times.append((event.occurred_at - _EPOCH) // _MICROSECOND)
        kind = event.type  # type: ignore[attr-defined]
        types.append(kind)
        ids.append(event.event_id)
        products.append(event.product_id if kind in _WITH_PRODUCT else None)  # type: ignore[attr-defined]
        events.append(encode(event))
    valid = pa.RecordBatch.from_arrays(
        [pa.array(index, pa.int64()), pa.array(customers, pa.string()), pa.array(times, pa.int64()),
         pa.array(types, pa.string()), pa.array(ids, pa.string()), pa.array(products, pa.string()),
         pa.array(events, pa.binary())], schema=VALID_SCHEMA)
    return CheckedRows(valid, refused)

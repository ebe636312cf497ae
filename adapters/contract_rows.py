"""Rows checked against the event contract in bulk: the validation step of ``nbo import``.

``check_lines`` takes candidate events as JSON (one object a row), validates each with the
contract's own pydantic models (``schemas.events.AnyEvent``, the models ``schemas.codec.decode``
validates with: no rule is written twice) and stores ``schemas.codec.encode`` of the valid ones,
so what is stored is byte for byte what a producer would have sent. Lines the mapping wrote in
that very form (``canonical``: ``history_files.Candidates.canonical``) are kept as they are
instead of encoding each event again; one row in ``CANONICAL_SAMPLE`` is encoded and compared
all the same, and a chunk where one differs is encoded whole. It imports neither polars nor
Redis, so it is cheap to start in a worker process (``nbo import`` runs it in a process pool over
chunks of rows, sent as Arrow arrays).

The JSON goes to pydantic-core as it is (``validate_json``, cheaper than ``orjson.loads`` then
``validate_python`` as ``decode`` does); the time "24 h ahead" is judged against is read once per
chunk (``ContractRules.context_at``). ``tests/unit/test_history_import.py`` checks that the bulk
check and ``decode`` accept and refuse the same rows with the same field and reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Sequence

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError

from domain.money import ExchangeRates, UnknownRate, in_base_currency
from schemas.codec import MAX_EVENT_BYTES, encode, invalid_from
from schemas.events import AnyEvent, Event
from schemas.rules import DEFAULT_RULES, ContractRules

_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)
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


#: The columns of a checked chunk of canonical lines: the rest comes from the lines' own fields
#: (``with_fields``).
CANONICAL_SCHEMA = pa.schema([("index", pa.int64()), ("event", pa.binary())])
_ID_START = len(b'{"event_id":"')


def with_fields(valid: pa.RecordBatch, fields: pa.Table, id_prefix: str) -> pa.RecordBatch:
    """The checked rows of a chunk of canonical lines (``CANONICAL_SCHEMA``) as ``VALID_SCHEMA``:
    ``fields`` holds ``customer_id``, ``occurred_at_us``, ``type`` and ``product_id`` of every
    line of the chunk, the event id is the one ``check_lines`` put first in each line."""
    index = valid.column("index")
    given = fields.take(index)
    events = valid.column("event")
    ids = pc.utf8_slice_codeunits(events.cast(pa.string()), _ID_START, _ID_START + len(id_prefix) + 32)
    return pa.RecordBatch.from_arrays(
        [index, given.column("customer_id").combine_chunks().cast(pa.string()),
         given.column("occurred_at_us").combine_chunks().cast(pa.int64()),
         given.column("type").combine_chunks().cast(pa.string()), ids.cast(pa.string()),
         given.column("product_id").combine_chunks().cast(pa.string()), events], schema=VALID_SCHEMA)


@dataclass
class CheckedRows:
    """The valid rows as Arrow columns (``VALID_SCHEMA``; ``CANONICAL_SCHEMA`` for canonical
    lines) and the refused ones as ``(index, field, reason, the line as given)``."""

    valid: pa.RecordBatch
    refused: list[tuple[int, str, str, bytes]] = field(default_factory=list)


def event_id_for(prefix: str, key: str) -> str:
    """The event id of a source row: ``prefix`` and 32 hex digits of BLAKE2b over the row's key
    (the mapping's key columns joined): the same row always gives the same id."""
    return prefix + hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


#: With ``canonical`` lines, one row in this many is encoded again and compared with its line.
CANONICAL_SAMPLE = 64


def check_lines(lines: Sequence[bytes] | pa.Array, keys: Sequence[str | bytes] | pa.Array | None = None,
                id_prefix: str = "", rules: ContractRules = DEFAULT_RULES, rates: ExchangeRates | None = None,
                canonical: bool = False, now: datetime | None = None) -> CheckedRows:
    """Validate every line (a JSON object) under the bank's contract ``rules`` (customer id
    pattern, card-number check, earliest event time: those the stream decodes with). With
    ``keys``, each line gets the event id ``event_id_for(id_prefix, keys[i])`` put in front of its
    fields first (the line must not carry one). With ``rates``, a row in a currency the bank's rate
    table has no rate for is refused naming the currency (the stream would dead-letter it); what is
    stored keeps the row's own currency (the fold converts, as the stream does).

    ``lines`` and ``keys`` may be Arrow arrays (binary, and binary or string). ``canonical``: the
    lines are already in the form ``encode`` writes (``history_files.Candidates.canonical``), so
    a valid line is kept as it is; one in ``CANONICAL_SAMPLE`` is encoded again to make sure, and
    should one differ every valid row of the chunk is encoded. An event more than 24 h after
    ``now`` (default: the clock, read once) is refused as from the future."""
    if isinstance(lines, (pa.Array, pa.ChunkedArray)):
        lines = lines.to_pylist()
    if isinstance(keys, (pa.Array, pa.ChunkedArray)):
        keys = keys.to_pylist()
    index: list[int] = []
    customers: list[str] = []
    times: list[datetime] = []
    types: list[str] = []
    ids: list[str] = []
    products: list[str | None] = []
    events: list[bytes] = []
    refused: list[tuple[int, str, str, bytes]] = []
    validate = _ADAPTER.validator.validate_json  # pydantic-core's own: TypeAdapter's wrapper costs ~0.3 us a call
    context = rules.context_at(now or datetime.now(timezone.utc))
    blake = hashlib.blake2b
    prefix = b'{"event_id":"' + id_prefix.encode("ascii")
    with_product = _WITH_PRODUCT
    same = True
    for i, line in enumerate(lines):
        if keys is not None:
            key = keys[i]
            digest = blake(key if key.__class__ is bytes else key.encode("utf-8"), digest_size=16).hexdigest()
            line = prefix + digest.encode("ascii") + b'",' + line[1:] if len(line) > 2 else line
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
        if canonical:  # the caller has the other columns (history_files.Candidates.fields)
            if same and len(events) % CANONICAL_SAMPLE == 0:
                same = encode(event) == line
            events.append(line)
            continue
        customers.append(event.customer_id)
        times.append(event.occurred_at)
        kind = event.type  # type: ignore[attr-defined]
        types.append(kind)
        ids.append(event.event_id)
        products.append(event.product_id if kind in with_product else None)  # type: ignore[attr-defined]
        events.append(encode(event))
    if canonical:
        if not same:  # validated again rather than kept: a million live models slow the collector down
            events = [encode(validate(line, context=context)) for line in events]
        return CheckedRows(pa.RecordBatch.from_arrays([pa.array(index, pa.int64()), pa.array(events, pa.binary())],
                                                      schema=CANONICAL_SCHEMA), refused)
    occurred = pa.array(times, pa.timestamp("us", tz="UTC")).cast(pa.int64())
    valid = pa.RecordBatch.from_arrays(
        [pa.array(index, pa.int64()), pa.array(customers, pa.string()), occurred,
         pa.array(types, pa.string()), pa.array(ids, pa.string()), pa.array(products, pa.string()),
         pa.array(events, pa.binary())], schema=VALID_SCHEMA)
    return CheckedRows(valid, refused)

"""Bytes <-> events. The only place that knows the wire format (UTF-8 JSON, one event a record).

``encode(event)`` and ``decode(raw)`` for one event; ``encode_columns(type, columns)`` writes many
events of one type from plain values, byte for byte what ``encode`` writes, for producers that
emit millions (the simulator)."""

from __future__ import annotations

import functools
from enum import Enum
from itertools import repeat
from typing import Any, Mapping, Sequence, get_args

import orjson
from pydantic import BaseModel, TypeAdapter, ValidationError

from schemas.events import AnyEvent, Event
from schemas.rules import DEFAULT_RULES, ContractRules

#: Records larger than this are refused before parsing (bytes).
MAX_EVENT_BYTES = 16 * 1024

_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)
#: pydantic-core's validator itself: ``TypeAdapter.validate_python``'s Python wrapper costs more
#: than a third of a microsecond an event.
_VALIDATE = _ADAPTER.validator.validate_python


class InvalidEvent(ValueError):
    """A record that is not a valid event. ``field`` names the offending field when known."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


def decode(raw: bytes, rules: ContractRules = DEFAULT_RULES) -> Event:
    """Parse and validate one record under the bank's contract ``rules`` (customer id pattern,
    card-number check, earliest event time; ``schemas.rules``). Raises ``InvalidEvent`` naming the
    field at fault."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"record is {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}", "record")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON ({exc})", "record") from None
    if not isinstance(data, dict):
        raise InvalidEvent("an event must be a JSON object", "record")
    try:
        return _VALIDATE(data, context=rules.context)
    except ValidationError as exc:
        raise invalid_from(exc) from None


def invalid_from(exc: ValidationError) -> InvalidEvent:
    """The first validation error as an ``InvalidEvent`` whose field is the dotted path."""
    first = exc.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    # The discriminated union puts the event type first in the path; drop it.
    if loc and loc[0] in {"deposit", "hotline", "pos", "purchase", "offer_outcome", "offer_decision", "profile"}:
        loc = loc[1:]
    field = ".".join(loc) or "type"
    return InvalidEvent(first["msg"], field)


def encode(event: Event) -> bytes:
    """Serialise an event to the wire format."""
    return event.__pydantic_serializer__.to_json(event)


def encode_columns(event_type: type[Event], columns: Mapping[str, Any]) -> list[bytes]:
    """Many events of one flat type at once, in the wire format, without validating them: the
    fast path for a producer that builds its values itself (the simulator), ~5x cheaper per event
    than building each model and calling ``encode``.

    ``columns`` maps field names to a list (or tuple), one value per event, or to a single value
    shared by every event; fields left out take the model's default. Values are what the wire
    holds: text for enums, ``True``/``False``, ``None`` for null, and ``occurred_at`` as whole
    UTC epoch seconds (``int``). The bytes are ``encode`` of the validated event (same fields in
    the same order, same number and time forms), so ``decode`` of them equals the event; values
    the contract refuses are not caught here but by any consumer's ``decode``.
    Raises ``ValueError`` for an unknown or missing field, or lists of unequal length."""
    names, defaults = _wire_layout(event_type)
    unknown = sorted(set(columns) - set(names))
    if unknown:
        raise ValueError(f"{event_type.__name__}: unknown field(s) {unknown}")
    length: int | None = None
    values: list[Any] = []
    for name in names:
        if name in columns:
            value = columns[name]
        elif name in defaults:
            value = defaults[name]
        else:
            raise ValueError(f"{event_type.__name__}: {name} is required")
        if isinstance(value, (list, tuple)):
            if length is not None and len(value) != length:
                raise ValueError(f"{event_type.__name__}: {name} has {len(value)} values, expected {length}")
            length = len(value)
            if name == "occurred_at":
                value = _utc_texts(value)
        elif name == "occurred_at":
            value = _utc_texts([value])[0]
        values.append(value)
    if length is None:
        length = 1
    rows = zip(*(v if isinstance(v, (list, tuple)) else repeat(v, length) for v in values))
    dumps = orjson.dumps
    return [dumps(dict(zip(names, row))) for row in rows]


@functools.cache
def _wire_layout(event_type: type[Event]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """(field names in the order ``encode`` writes them, field -> default as it is written)."""
    names, defaults = [], {}
    for name, info in event_type.model_fields.items():
        if any(isinstance(arg, type) and issubclass(arg, BaseModel) for arg in get_args(info.annotation)):
            raise ValueError(f"{event_type.__name__}.{name} holds nested models; use encode")
        names.append(name)
        if not info.is_required() and not info.default_factory_takes_validated_data:  # derived: the caller gives it
            default = info.get_default(call_default_factory=True)
            defaults[name] = default.value if isinstance(default, Enum) else default
    return tuple(names), defaults


def _utc_texts(epoch_s: Sequence[int]) -> list[str]:
    """Whole UTC epoch seconds -> ``2026-01-02T08:00:00Z``, the form ``encode`` gives a UTC time."""
    import numpy as np

    stamps = np.asarray(epoch_s, dtype=np.int64).astype("datetime64[s]")
    return [text + "Z" for text in np.datetime_as_string(stamps, unit="s").tolist()]


def decode_trusted(data: dict[str, Any], rules: ContractRules = DEFAULT_RULES) -> Event:
    """The event of an already parsed record from a log this system wrote and validated (the
    simulator's log, the training store, a dump of the stream's topics), without validating
    it again: an event equal to what ``decode`` gives for a valid record, in about half the
    time. ``data`` (``orjson.loads`` of the record) is taken over, not copied.

    Nothing is checked beyond what it takes to build the event: a record that is not valid
    may give an event ``decode`` would have refused. Types with nested models
    (``offer_decision``), records with unknown or missing fields, and times ``datetime``
    cannot read fall back to ``decode``'s full validation under ``rules`` (and its ``InvalidEvent``)."""
    layout = _TRUSTED_LAYOUTS.get(data.get("type"))  # type: ignore[arg-type]
    if layout is None or data.keys() != layout[1]:
        return decode(orjson.dumps(data), rules)
    event_type, _, enums = layout
    try:
        data["occurred_at"] = _from_iso(data["occurred_at"])
        for name, members in enums:
            value = data[name]
            if value is not None:
                data[name] = members[value]
    except (KeyError, TypeError, ValueError):
        return decode(orjson.dumps(data, default=str), rules)
    event = event_type.__new__(event_type)
    _set(event, "__dict__", data)
    _set(event, "__pydantic_fields_set__", set(data))
    _set(event, "__pydantic_extra__", None)
    _set(event, "__pydantic_private__", None)
    return event


_set = object.__setattr__


def _from_iso(text: str) -> Any:
    from datetime import datetime

    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError("naive time")
    return value


def _trusted_layouts() -> dict[str, tuple[type[Event], Any, tuple[tuple[str, dict[Any, Any]], ...]]]:
    """type -> (event class, its field names as a keys view, (enum field, value -> member))."""
    out = {}
    for event_type in get_args(get_args(AnyEvent)[0]):
        try:
            names, _ = _wire_layout(event_type)
        except ValueError:  # nested models: validated by decode
            continue
        enums = []
        for name, info in event_type.model_fields.items():
            for arg in (info.annotation, *get_args(info.annotation)):
                if isinstance(arg, type) and issubclass(arg, Enum):
                    enums.append((name, dict(arg._value2member_map_)))
        out[event_type.model_fields["type"].default] = (event_type, dict.fromkeys(names).keys(), tuple(enums))
    return out


_TRUSTED_LAYOUTS = _trusted_layouts()

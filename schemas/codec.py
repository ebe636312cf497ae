"""Bytes <-> events. The only place that knows the wire format (UTF-8 JSON, one event a record)."""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas.events import AnyEvent, Event

#: Records larger than this are refused before parsing (bytes).
MAX_EVENT_BYTES = 16 * 1024

_ADAPTER: TypeAdapter[Event] = TypeAdapter(AnyEvent)


class InvalidEvent(ValueError):
    """A record that is not a valid event. ``field`` names the offending field when known."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.reason = reason
        self.field = field


def decode(raw: bytes) -> Event:
    """Parse and validate one record. Raises ``InvalidEvent`` naming the field at fault."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(f"record is {len(raw)} bytes, the limit is {MAX_EVENT_BYTES}", "record")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(f"not valid JSON ({exc})", "record") from None
    if not isinstance(data, dict):
        raise InvalidEvent("an event must be a JSON object", "record")
    try:
        return _ADAPTER.validate_python(data)
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

"""What a dead letter may show of a refused record: card-number-like digits and free text masked.

A refused record is by definition one that broke the contract, so it may hold what the contract
keeps out: a card number (PAN) where the pseudonymous customer id belongs, a CTI note or call
transcript in a field the contract does not have. The dead-letter topic, the worker's log and
``nbo replay``'s summary are read by support staff who are not cleared for either, so:

- **Card-number-like**: any run of 13 to 19 digits, optionally with single spaces or dashes
  between them (``4111111111111111``, ``4111 1111 1111 1111``, ``4111-1111-1111-1111``), Luhn-valid
  or not (a Luhn check would let a mistyped PAN through, and a PAN-shaped id is personal data
  either way). It is replaced by ``****`` and its last four digits (``****1111``), the most PCI
  DSS allows to be shown; the same number always gives the same token, so support can tell two
  letters of one card apart from two letters of two cards, and no more. JSON integers of 13 to
  19 digits (no contract amount is that large) become the same token, as a string.
- **Free text**: the contract has no free-text field (every string is an id, an enum, a time or
  a code with a pattern, none with white space), so any string that is not the value of a
  contract field, holds white space, or is longer than ``MAX_SHOWN_TEXT`` characters is replaced
  by ``<text, N chars>``, and that text is also cut out of the reason, the field path and the
  key (validation messages may quote the input, e.g. an unknown ``type``).
- Text that passes both rules is shown as it is: ids, enum values, times, field names.

Pure functions; the engine core (``streams.core``) applies them to every dead letter.
``mask_worker_logs`` applies the card-number rule to every log line of a worker process.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Iterable

import orjson
from pydantic import BaseModel

from schemas.events import EVENT_TYPES, OfferedItem

CARD_NUMBER = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
WHITE_SPACE = re.compile(r"\s")
MAX_SHOWN_TEXT = 64
MIN_CARD_DIGITS, MAX_CARD_DIGITS = 13, 19


def _field_names(models: Iterable[type[BaseModel]]) -> frozenset[str]:
    return frozenset(name for model in models for name in model.model_fields)


#: Every field name of the event contract (all event types and the nested offer items).
CONTRACT_FIELDS: frozenset[str] = _field_names([*EVENT_TYPES.values(), OfferedItem])


def card_token(digits: str) -> str:
    """``****`` plus the last four digits of a card-number-like match."""
    only = "".join(c for c in digits if c.isdigit())
    return "****" + only[-4:]


def mask_card_numbers(text: str) -> str:
    """``text`` with every card-number-like run replaced by its ``card_token``."""
    return CARD_NUMBER.sub(lambda m: card_token(m.group(0)), text)


def text_token(text: str) -> str:
    return f"<text, {len(text)} chars>"


class Masker:
    """Masks one record: ``value`` (the parsed record, masked), then ``text`` for the reason,
    the field path and the key, which also cuts out the free text found in the value."""

    def __init__(self) -> None:
        self.free_text: set[str] = set()

    def value(self, data: Any, field: str | None = None) -> Any:
        """A JSON value with card numbers and free text masked; ``field`` is the name it sits under."""
        if isinstance(data, dict):
            return {self.name(str(k)): self.value(v, str(k)) for k, v in data.items()}
        if isinstance(data, list):
            return [self.value(v, field) for v in data]
        if isinstance(data, str):
            if field not in CONTRACT_FIELDS or len(data) > MAX_SHOWN_TEXT or WHITE_SPACE.search(data):
                if data:
                    self.free_text.add(data)
                return text_token(data)
            return mask_card_numbers(data)
        if isinstance(data, int) and not isinstance(data, bool) and \
                MIN_CARD_DIGITS <= len(str(abs(data))) <= MAX_CARD_DIGITS:
            return card_token(str(abs(data)))
        return data

    def name(self, name: str) -> str:
        """An object key: shown (card numbers masked) unless it is long enough to be free text."""
        if name not in CONTRACT_FIELDS and (len(name) > MAX_SHOWN_TEXT or WHITE_SPACE.search(name)):
            self.free_text.add(name)
            return text_token(name)
        return mask_card_numbers(name)

    def text(self, text: str) -> str:
        """Reason, field path or key text: the value's free text cut out, card numbers masked."""
        for found in sorted(self.free_text, key=len, reverse=True):
            if len(found) >= 4:  # shorter text would match by accident and says nothing
                text = text.replace(found, text_token(found))
        masked = mask_card_numbers(text)
        return masked if len(masked) <= MAX_SHOWN_TEXT * 4 else masked[:MAX_SHOWN_TEXT * 4] + "..."

    def key(self, key: bytes | None) -> str | None:
        if key is None:
            return None
        text = key.decode("utf-8", "replace")
        if len(text) > MAX_SHOWN_TEXT or (WHITE_SPACE.search(text) and not CARD_NUMBER.fullmatch(text)):
            return text_token(text)
        return self.text(text)


def parsed(value: bytes) -> tuple[bool, Any]:
    """(True, the JSON value) or (False, None) when ``value`` is not JSON."""
    try:
        return True, orjson.loads(value)
    except orjson.JSONDecodeError:
        return False, None


#: Loggers that dump whole protocol frames (record keys and values included) at DEBUG; the
#: worker keeps them at INFO or above whatever its log level.
PROTOCOL_DUMP_LOGGERS = ("aiokafka.conn", "kafka.conn", "kafka.protocol.parser")


def mask_worker_logs() -> None:
    """Make every log record of this process carry its message with card numbers masked (a log
    record factory, so it holds for handlers configured later, faust's included), and keep the
    protocol-dump loggers above DEBUG: free text cannot be recognised in a raw frame. Idempotent."""
    for name in PROTOCOL_DUMP_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(max(logger.getEffectiveLevel(), logging.INFO))
    factory = logging.getLogRecordFactory()
    if getattr(factory, "masks_card_numbers", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it for logging to report
            return record
        masked = mask_card_numbers(message)
        if masked != message:
            record.msg, record.args = masked, None
        return record

    masked_record.masks_card_numbers = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(masked_record)

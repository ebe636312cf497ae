"""Every Redis key the project uses, in one place.

Per-customer keys carry the customer id as a hash tag (``{C000000042}``) so that all of one
customer's keys live in one Redis Cluster slot and one Lua script may touch them together; the
tag is the customer id alone, so a customer's keys in every namespace (the live one and a
replay's) share that slot too.

- ``<prefix>:{<customer>}:state`` — hash: ``state`` (the CustomerState as JSON), ``v`` (a version
  incremented on every write, for compare-and-set), ``o:<topic>:<partition>`` (the highest source
  offset applied from that partition for this customer).
- ``<prefix>:{<customer>}:seen`` — sorted set of event ids applied, scored by apply time (epoch s);
  entries older than the dedupe TTL are trimmed on write.
- ``<prefix>:stats`` — hash of counters (``applied``, ``duplicates``, ``dead_letters``). One key,
  so any slot will do; no command names it together with another key (``streams.replay.switch``
  copies it from the rebuilt namespace rather than renaming it, which on a cluster would cross
  slots).
- ``<prefix>:decision:<decision id>`` — string: one offer decision as JSON
  ``[customer id, channel, [product id, ...], at_s]``, expiring at the end of the outcome window.
  No customer hash tag: an outcome is looked up by its decision id alone (so that a wrong
  customer id is told apart from an unknown decision), and only ever one key at a time, so any
  slot will do.
- ``<prefix>:{learn}:evidence`` — hash of online acceptance evidence (``domain.learning``): field
  ``<product id>`` (all customers), ``<product id>|<segment>`` (one vs segment),
  ``<product id>@<channel>``, ``*`` (all products) or ``*@<channel>``, value JSON
  ``[accepts, others, as_of_s, expected]`` (``domain.learning.evidence_fields``). The ``{learn}`` hash tag keeps it, and the stream's dedupe set
  for the answers it counted, in one slot, so one script updates both.
- ``<prefix>:rate:<sha256 of an API key>`` — string: the key's theoretical arrival time (epoch
  microseconds, the server's clock) of the shared rate limit (``adapters.shared_control``),
  expiring when reached. One key per script call, so any slot will do.
- ``<prefix>:control:model`` / ``<prefix>:control:policy`` — strings: the promoted model version
  and the marketing policy (levers JSON) every API replica follows when
  ``NBO_API__CONTROL_SOURCE=redis``; ``<prefix>:control:changed`` is the pub/sub channel on which
  ``model`` or ``policy`` is published when one changes.
- ``<prefix>:{learn}:counts:<YYYY-MM-DD>`` — hash of the closed loop's live counters for offers
  shown on that UTC day (``domain.attribution``): field
  ``<product id>|<channel>|<segment>|<arm>|<measure>|<model version>`` -> integer, measures
  ``shows``, ``accepted``, ``declined:<reason>``, ``ignored``, ``conversions``,
  ``conversions_accepted``. Read by ``redis_store.RedisLoopStats``; kept until deleted.
- ``<prefix>:{learn}:seen`` — sorted set of the loop's fact units already added to the evidence
  and the counters (unit id -> epoch s when added), trimmed past the dedupe TTL like a
  customer's ``seen``; in the ``{learn}`` slot with what it guards, so one script checks and adds.
- ``x:<version>`` fields of a customer's state hash — the outbox: the loop facts of the write
  that set that version (JSON), until they are added to the ``{learn}`` keys and the conversions
  published; a field still there when the customer is next read is sent again (the dedupe set
  drops what was already added).
"""

from __future__ import annotations


def state_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}:{{{customer_id}}}:state"


def seen_key(prefix: str, customer_id: str) -> str:
    return f"{prefix}:{{{customer_id}}}:seen"


def stats_key(prefix: str) -> str:
    return f"{prefix}:stats"


def decision_key(prefix: str, decision_id: str) -> str:
    return f"{prefix}:decision:{decision_id}"


def learn_key(prefix: str) -> str:
    return f"{prefix}:{{learn}}:evidence"


def rate_key(prefix: str, key_digest: str) -> str:
    return f"{prefix}:rate:{key_digest}"


def control_key(prefix: str, name: str) -> str:
    return f"{prefix}:control:{name}"


def control_channel(prefix: str) -> str:
    return f"{prefix}:control:changed"


def learn_seen_key(prefix: str) -> str:
    return f"{prefix}:{{learn}}:seen"


def loop_counts_key(prefix: str, day: str) -> str:
    """``day``: ``YYYY-MM-DD`` (UTC)."""
    return f"{prefix}:{{learn}}:counts:{day}"


def outbox_field(version: str) -> str:
    return f"x:{version}"


def offset_field(topic: str, partition: int) -> str:
    return f"o:{topic}:{partition}"


def customer_pattern(prefix: str) -> str:
    """SCAN pattern matching every customer's state key."""
    return f"{prefix}:{{*}}:state"

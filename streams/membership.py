"""How a stream worker joins its consumer group, for both engines.

aiokafka (under both engines) has no cooperative (incremental) rebalancing: every rebalance
is eager, every member gives up every partition and stops until the group is formed again
(about 3 s on Tansu 0.6, whatever the session timeout; docs/CAPACITY.md has the figures).
So the thing to save is rebalances:

- ``wait_to_join``: a replacement started beside a dead member joins at once, which starts one
  rebalance in which the dead member still counts (its partitions keep no owner), and the dead
  member's session expiring starts a second. Waiting, while the group is stable with members,
  until the group starts a rebalance (the expiry) or loses a member, and joining that one,
  makes it one rebalance. A worker that finds no group, or a group already rebalancing, joins at
  once; one that finds a healthy group (a scale-out) waits out ``wait_s`` and then joins.
- static membership (``NBO_STREAM__INSTANCE_ID``, KIP-345) lets a worker restarted within the
  session timeout take its old partitions back with no rebalance at all, on Apache Kafka >= 2.3.
  Tansu 0.6 does not honour it: a group whose members set it rebalances every ~7 s for good
  (measured), so it is off by default, and no join wait applies with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Awaitable, Callable

log = logging.getLogger("nbo.worker")

GroupView = tuple[str, int]  # the group's state as the broker names it, and how many members it has
POLL_S = 0.1


async def wait_to_join(describe: Callable[[], Awaitable[GroupView]], wait_s: float, *,
                       clock: Callable[[], float] = time.monotonic,
                       sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, poll_s: float = POLL_S) -> str:
    """Wait until joining the group costs no rebalance of its own; returns why it may join now.

    ``describe`` gives the group's state and member count (``Stable``, ``PreparingRebalance``,
    ``Empty``, ... on Kafka; ``Stable``, ``Unknown``, ``Assigning`` on Tansu). ``empty``: no
    members; ``rebalancing``: the group left ``Stable`` or lost a member since the first look
    (join this rebalance); ``waited``: ``wait_s`` passed with the group stable; ``unknown``: the
    broker would not say (join, as without the wait); ``no wait``: ``wait_s`` is 0."""
    if wait_s <= 0:
        return "no wait"
    deadline = clock() + wait_s
    first_members: int | None = None
    while True:
        try:
            state, members = await describe()
        except Exception as exc:  # a broker without DescribeGroups, a timeout: join as without the wait
            log.warning("cannot describe the consumer group (%s: %s); joining now", type(exc).__name__, exc)
            return "unknown"
        if members == 0:
            return "empty"
        if first_members is None:
            first_members = members
        if state != "Stable" or members < first_members:
            return "rebalancing"
        if clock() >= deadline:
            return "waited"
        await sleep(poll_s)


async def wait_to_join_group(bootstrap: str, group_id: str, wait_s: float, *, client_id: str,
                             **connection: Any) -> str:
    """``wait_to_join`` against the broker: DescribeGroups through an aiokafka admin client
    (``connection``: the security arguments the engine's consumer gets). Logs the outcome."""
    if wait_s <= 0:
        return "no wait"
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"{client_id}-join",
                                request_timeout_ms=5000, **connection)
    started = time.monotonic()
    try:
        await admin.start()

        async def describe() -> GroupView:
            group = (await admin.describe_consumer_groups([group_id]))[0].groups[0]
            # (error_code, group_id, group_state, protocol_type, protocol, members[, authorized_operations])
            return str(group[2]), len(group[5])

        why = await wait_to_join(describe, wait_s)
    except Exception as exc:  # the admin client could not start: join as without the wait
        log.warning("cannot reach the group coordinator to time the join (%s: %s); joining now",
                    type(exc).__name__, exc)
        why = "unknown"
    finally:
        await admin.close()
    log.info("joining group %s after %.1f s (%s)", group_id, time.monotonic() - started, why)
    return why


def join_wait_s(stream: Any) -> float:
    """How long a starting worker may wait to join (``StreamSettings``): ``join_wait_s``, by
    default the session timeout (the longest a dead member's session can still run); none with
    static membership, where the broker hands a restarted member its partitions back."""
    if stream.instance_id is not None:
        return 0.0
    return stream.session_timeout_s if stream.join_wait_s is None else stream.join_wait_s

"""The offer path every channel route calls: read the state, fold in the teller's transaction,
rank (in the customer's experiment arm, with the online evidence read in the background and a
seed derived from the decision id), answer, count and log the decision, and remember it for the
outcomes that will name it (``services.api.outcome_checks``).

A slow or absent Redis (or a record that cannot be read) gives the degraded fallback decision,
never an error: the offer routes always answer 200.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from decisioning import rank, rank_without_state, seed_from
from domain.state import CustomerState
from domain.transactions import fold_counter_transaction
from schemas.events import OfferChannel
from services.api.models import Transaction
from services.api.views import offer_view

if TYPE_CHECKING:
    from services.api.deps import Services

log = logging.getLogger("nbo.api")


async def read_state(services: Services, customer_id: str) -> CustomerState | None:
    """The customer's state; a new ``CustomerState`` if unknown; ``None`` if Redis failed.
    ``ApiError`` 422 first if the bank's rules refuse the customer id."""
    services.check_customer_id(customer_id)
    try:
        async with asyncio.timeout(services.redis_budget_s):  # connect + read, whatever is slow
            state = await services.store.get(customer_id)
    except Exception as exc:  # timeout, connection error or a corrupt record: degrade, never 5xx
        services.metrics.redis_errors.inc()
        log.warning("state read failed: %s", type(exc).__name__)
        return None
    return state if state is not None else CustomerState(customer_id)


async def offer(services: Services, customer_id: str, channel: OfferChannel, limit: int,
                transaction: Transaction | None = None) -> dict[str, Any]:
    """The ``OfferResponse`` body (plain data) of at most ``limit`` offers for the customer on
    ``channel``; ``transaction`` is the one a teller has in hand, folded in before ranking (in the
    bank's base currency when it names none)."""
    started = time.perf_counter()
    now = datetime.now(timezone.utc)
    decision_id = services.decision_ids.next()
    state = await read_state(services, customer_id)
    model = services.models.current
    catalog = services.catalogs.current  # the catalog in force, read once for this request
    policy = services.policies.current
    seed = seed_from(decision_id)  # the decision's randomness (control draw, Thompson sample): reproducible
    if state is None:
        decision = rank_without_state(customer_id, catalog, policy, channel.value, now.timestamp(), limit,
                                      loop=services.loop, seed=seed)
        services.metrics.fallbacks.labels(channel.value).inc()
    else:
        if transaction is not None:
            state = fold_counter_transaction(state, transaction.kind, transaction.amount_minor,
                                             transaction.currency or services.params.rates.base,
                                             transaction.purpose, now, teller_event_id(decision_id), services.params)
        decision = rank(state, model, catalog, policy, channel.value, now.timestamp(), limit, services.params,
                        loop=services.loop, evidence=services.learning.evidence(), seed=seed)
    response = offer_view(decision, decision_id, customer_id, channel, model.version, services.params.rates.base)
    latency_ms = (time.perf_counter() - started) * 1000
    services.metrics.observe_decision(channel.value, decision.degraded, latency_ms / 1000)
    services.publisher.log_decision(decision_id, customer_id, channel.value, decision, model.version, latency_ms, now)
    services.decisions.remember(decision_id, customer_id, channel.value,
                                tuple([o.product.product_id for o in decision.offers]), now.timestamp())
    return response


def default_limit(services: Services, channel: OfferChannel) -> int:
    """How many offers a channel gets when the request does not say."""
    api = services.settings.api
    return {"teller": api.teller_offers, "call_centre": api.call_centre_offers, "mobile": 3}[channel.value]


def teller_event_id(decision_id: str) -> str:
    """The event id of the transaction folded in for a decision (one per decision)."""
    return f"teller-{decision_id[2:]}"


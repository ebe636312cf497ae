"""The contact-policy step: when not to sell, and how often.

- no selling while a complaint is open, nor to value x satisfaction segment G (buys a lot,
  complains): every candidate is dropped and a service action is set that matches the data,
  ``resolve_complaint`` while a complaint is open, else (segment G, complaints settled)
  ``address_satisfaction``;
- a product declined recently is held back for a cool-down that depends on the reason
  (long for ``not_interested``, short for ``bad_timing``);
- a product accepted is held back on every channel until its purchase arrives (then it is held,
  and eligibility's "already held" applies), and for ``ACCEPTED_HOLD_DAYS`` at most, so that a
  purchase that posts late does not bring it back (``hold_accepted``);
- at most ``daily_caps[channel]`` products shown per customer per channel per day, and at most
  ``daily_cap_total`` over all channels.
"""

from __future__ import annotations

import time

from decisioning.context import Context
from decisioning.policy import DAY_S, Policy
from domain.catalog import Product
from domain.state import CustomerState


def cooldown_days(product: Product, reason: str | None, policy: Policy | None = None) -> int:
    """Days a product is held back after a decline for ``reason``."""
    table = (policy or Policy()).decline_cooldown_days
    days = table.get(reason or "other", table.get("other", 30))
    return product.cooldown_days if days is None else days


#: Days an accepted product is held back while its purchase has not arrived.
ACCEPTED_HOLD_DAYS = 30
#: A purchase this long before the acceptance still fulfils it (the sale may post before the answer is recorded).
PURCHASE_BEFORE_ACCEPT_S = DAY_S


def accepted_pending(state: CustomerState, product_id: str, now_s: float, hold_days: float = ACCEPTED_HOLD_DAYS) -> bool:
    """True while ``product_id`` was accepted less than ``hold_days`` before ``now_s`` (UTC epoch
    seconds) and no purchase of it from about the acceptance on has been folded in."""
    record = state.contacts.get(product_id)
    if record is None or not record.last_accepted_at_s or now_s - record.last_accepted_at_s >= hold_days * DAY_S:
        return False
    held = state.holdings.get(product_id)
    return held is None or held.last_at_s < record.last_accepted_at_s - PURCHASE_BEFORE_ACCEPT_S


def hold_accepted(ctx: Context) -> None:
    """Exclude, as ``accepted_pending_purchase``, every candidate the customer accepted and has
    not bought yet (``accepted_pending``): the same on every channel. Walks the customer's few
    contact records, not the candidates (the offer path's budget)."""
    for pid, record in ctx.state.contacts.items():
        if record.last_accepted_at_s and pid in ctx.candidates and accepted_pending(ctx.state, pid, ctx.now_s):
            ctx.exclude(pid, "accepted_pending_purchase")


def day_of(at_s: float) -> str:
    """The UTC calendar day of ``at_s`` as ``YYYY-MM-DD`` (the key of ``daily_contacts``)."""
    return time.strftime("%Y-%m-%d", time.gmtime(at_s))


def contact_policy(ctx: Context) -> None:
    state, policy = ctx.state, ctx.policy
    if state.open_complaint or state.vs_segment == "G":
        ctx.decision.service_action = "resolve_complaint" if state.open_complaint else "address_satisfaction"
        rule = "open_complaint" if state.open_complaint else "segment_g_fix_first"
        for pid in list(ctx.candidates):
            ctx.exclude(pid, rule)
        return
    hold_accepted(ctx)
    for pid in list(ctx.candidates):
        record = state.contacts.get(pid)
        if record and record.last_declined_at_s:
            days = cooldown_days(ctx.candidates[pid].product, record.last_decline_reason, policy)
            if ctx.now_s - record.last_declined_at_s < days * DAY_S:
                ctx.exclude(pid, f"cooldown_{record.last_decline_reason}")
    day = day_of(ctx.now_s)
    shown_channel = state.daily_contacts.get(f"{day}|{ctx.channel}", 0)
    shown_total = sum(n for key, n in state.daily_contacts.items() if key.startswith(day + "|"))
    room = min(policy.daily_caps.get(ctx.channel, 3) - shown_channel, policy.daily_cap_total - shown_total)
    if room <= 0:
        for pid in list(ctx.candidates):
            ctx.exclude(pid, "daily_cap")
    ctx.decision.max_offers = max(0, room)

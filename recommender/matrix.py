"""The interaction matrix: one row per customer, one column per product and per behaviour token.

A row holds, as raw confidence weights (the model applies ``log1p``):

- products held: ``domain.features.holdings_weights`` (1 per holding, more for frequent
  use and repeat purchases) plus ``ACCEPT_WEIGHT`` per accepted offer of that product;
- behaviour tokens decayed to the matrix time (``domain.features.tokens_at``), e.g.
  ``pos:hotel_5star``, ``hotline:loan_inquiry``, ``dep:large_inflow``, plus the static
  ``emp:*``, ``age:*``, ``inc:*`` (declared income band, when known) and ``tier:*`` tokens, so
  behaviour can predict products.

Rows come from customer states (``CustomerState``), which come from the event log folded with
the pure ``domain.features.apply`` up to a cutoff (``fold_event_log``), or from a Redis
state snapshot (pass the decoded states to ``build_matrix``). Times are UTC epoch seconds.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson
from scipy import sparse

from domain.features import FeatureParams, apply_all, holdings_weights, tokens_at
from domain.money import in_base_currency
from domain.state import CustomerState
from schemas.codec import decode, decode_trusted
from schemas.events import Event
from schemas.rules import DEFAULT_RULES, ContractRules

#: Extra confidence on a product column per accepted offer of it.
ACCEPT_WEIGHT = 0.5
#: Weights below this (long-faded tokens) are left out of the matrix.
MIN_WEIGHT = 0.01
#: Events of one customer folded together (``apply_all``) by ``fold_event_log``.
FOLD_BATCH = 16


@dataclass(slots=True)
class Purchase:
    customer_id: str
    product_id: str
    at_s: float


@dataclass
class FoldedLog:
    """Customer states at each cutoff (events strictly before it) and every purchase seen.

    ``states[k]`` maps customer id -> state at ``cutoffs_s[k]``: a dict, or for a fold that
    ran in other processes a ``PackedStates`` (same mapping, states kept pickled until read)."""

    cutoffs_s: tuple[float, ...]
    states: list[Mapping[str, CustomerState]]  # one mapping per cutoff
    purchases: list[Purchase]
    events: int
    last_event_s: float
    #: events skipped because they are older than the starting snapshot (already in it)
    skipped: int = 0


def read_lines(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                yield line


def iso_epoch_s(text: str) -> float:
    """An ISO 8601 time as UTC epoch seconds (a time without an offset is taken as UTC)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


@contextmanager
def gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a fold: states and events hold no cycles, and with
    millions of live states each full collection walks all of them (the fold ran 2-3x slower)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def fold_event_log(lines: Iterable[bytes], cutoffs_s: Sequence[float],
                   params: FeatureParams = FeatureParams(), rules: ContractRules = DEFAULT_RULES, *,
                   validate: bool = True, initial: Mapping[str, CustomerState] | None = None,
                   initial_purchases: Iterable[Purchase] = (), since_s: float | None = None) -> FoldedLog:
    """Fold a JSONL event log into customer states at each cutoff (ascending, UTC epoch s).

    Each customer's events must come in time order (``nbo simulate`` and a per-customer
    partitioned topic both do that); customers may interleave. Events at or after the last
    cutoff are not folded, but their purchases are returned (they are the labels). Each event is
    decoded under the bank's contract ``rules`` and its amounts converted into the base currency
    of ``params.rates`` (``domain.money``), as the stream does; an invalid record or a currency
    with no rate raises (``InvalidEvent``, ``UnknownRate``).

    ``validate=False`` reads a log this system wrote and validated (``schemas.codec.decode_trusted``:
    the same events, not checked again; amounts are still converted). ``initial`` (states at
    ``since_s``, e.g. a snapshot) and ``initial_purchases`` (the purchases before it) start the
    fold; events older than ``since_s`` are then already in them and are skipped (counted in
    ``skipped``). Every cutoff must be at or after ``since_s``."""
    cutoffs = tuple(sorted(float(c) for c in cutoffs_s))
    if not cutoffs:
        raise ValueError("at least one cutoff is needed")
    if since_s is not None and cutoffs[0] < since_s:
        raise ValueError(f"states at {_iso(cutoffs[0])} are asked for but the fold starts from a snapshot at "
                         f"{_iso(since_s)}: use an older snapshot, or fewer or shorter training windows")
    last_cut = cutoffs[-1]
    current: dict[str, CustomerState] = dict(initial) if initial is not None else {}
    passed: dict[str, int] = {}
    snapshots: list[dict[str, CustomerState]] = [dict() for _ in cutoffs]
    purchases: list[Purchase] = list(initial_purchases)
    events = skipped = 0
    last_event_s = 0.0
    floor_s = since_s if since_s is not None else -math.inf
    loads, epoch_s, intern, rates = orjson.loads, iso_epoch_s, sys.intern, params.rates
    # Each customer's events wait in ``pending`` (up to FOLD_BATCH) and go in with one
    # ``apply_all`` (one copy of the state per batch instead of one per event); a state is
    # brought up to date before it is kept at a cutoff.
    pending: dict[str, list[Event]] = {}

    def flush(cid: str) -> None:
        batch = pending.pop(cid, None)
        if batch:
            current[cid] = apply_all(current.get(cid) or CustomerState(customer_id=cid), batch, params)

    with gc_paused():
        for raw in lines:
            head = loads(raw)
            cid = intern(head["customer_id"])  # one string per customer, however many events and cutoffs
            at_s = epoch_s(head["occurred_at"])
            if at_s < floor_s:
                skipped += 1
                continue
            events += 1
            if at_s > last_event_s:
                last_event_s = at_s
            if head.get("type") == "purchase":
                purchases.append(Purchase(cid, intern(head["product_id"]), at_s))
            k = passed.get(cid, 0)
            if k < len(cutoffs) and at_s >= cutoffs[k]:
                flush(cid)
                while k < len(cutoffs) and at_s >= cutoffs[k]:
                    if cid in current:
                        snapshots[k][cid] = current[cid]  # states are values: apply_all returns a new one
                    k += 1
                passed[cid] = k
            if at_s >= last_cut:
                continue
            batch = pending.get(cid)
            if batch is None:
                batch = pending[cid] = []
            batch.append(in_base_currency(decode(raw, rules) if validate else decode_trusted(head, rules), rates))
            if len(batch) >= FOLD_BATCH:
                flush(cid)
        for cid in list(pending):
            flush(cid)
        for cid, state in current.items():
            for k in range(passed.get(cid, 0), len(cutoffs)):
                snapshots[k][cid] = state
    return FoldedLog(cutoffs, list(snapshots), purchases, events, last_event_s, skipped)


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def product_weights(state: CustomerState) -> dict[str, float]:
    weights = holdings_weights(state)
    for pid, record in state.contacts.items():
        if record.accepts:
            weights[pid] = weights.get(pid, 0.0) + ACCEPT_WEIGHT * record.accepts
    return weights


def token_vocabulary(states: Iterable[CustomerState], now_s: float, max_columns: int = 400,
                     min_customers: int = 5, params: FeatureParams = FeatureParams()) -> tuple[str, ...]:
    """The tokens seen for at least ``min_customers`` customers, most frequent first (ties by name)."""
    counts: Counter[str] = Counter()
    for state in states:
        counts.update(tokens_at(state, now_s, params).keys())
    kept = [(n, t) for t, n in counts.items() if n >= min_customers]
    kept.sort(key=lambda item: (-item[0], item[1]))
    return tuple(t for _, t in kept[:max_columns])


@dataclass
class InteractionMatrix:
    """``x``: CSR float32 [C, P + T] raw weights, columns = ``product_ids`` then ``token_ids``.
    ``segments`` [C] value tiers, ``recent`` [C] recent purchases ``(product_id, at_s)``."""

    customer_ids: tuple[str, ...]
    product_ids: tuple[str, ...]
    token_ids: tuple[str, ...]
    x: sparse.csr_matrix
    segments: tuple[str, ...]
    recent: list[list[tuple[str, float]]]
    at_s: float

    @property
    def held(self) -> sparse.csr_matrix:
        return self.x[:, : len(self.product_ids)]

    def row_index(self) -> dict[str, int]:
        return {c: i for i, c in enumerate(self.customer_ids)}


def row_of(state: CustomerState, now_s: float,
           params: FeatureParams = FeatureParams()) -> tuple[dict[str, float], dict[str, float]]:
    """(held product weights, behaviour tokens) of one state at ``now_s``: what ``NboModel.score`` takes."""
    return product_weights(state), tokens_at(state, now_s, params)


def build_matrix(states: Mapping[str, CustomerState] | Iterable[CustomerState], product_ids: Sequence[str],
                 token_ids: Sequence[str], now_s: float, customer_ids: Sequence[str] | None = None,
                 params: FeatureParams = FeatureParams()) -> InteractionMatrix:
    """Rows for ``customer_ids`` (default: every state, in order); a customer without a state
    gets an empty row. Unknown products and tokens are dropped."""
    if isinstance(states, Mapping):
        by_id = states  # not copied: a PackedStates unpacks each state once, as it is read
    else:
        by_id = {s.customer_id: s for s in states}
    order = tuple(customer_ids) if customer_ids is not None else tuple(by_id)
    columns = {name: i for i, name in enumerate(tuple(product_ids) + tuple(token_ids))}
    indptr = [0]
    indices: list[int] = []
    data: list[float] = []
    segments: list[str] = []
    recent: list[list[tuple[str, float]]] = []
    for cid in order:
        state = by_id.get(cid)
        if state is None:
            indptr.append(len(indices))
            segments.append("mass")
            recent.append([])
            continue
        held, tokens = row_of(state, now_s, params)
        row: dict[int, float] = {}
        for source in (held, tokens):
            for name, weight in source.items():
                j = columns.get(name)
                if j is not None and weight >= MIN_WEIGHT:
                    row[j] = row.get(j, 0.0) + weight
        for j in sorted(row):
            indices.append(j)
            data.append(row[j])
        indptr.append(len(indices))
        segments.append(state.value_tier)
        recent.append([(str(p), float(t)) for p, t in state.recent_purchases if float(t) < now_s])
    x = sparse.csr_matrix((np.asarray(data, np.float32), np.asarray(indices, np.int32), np.asarray(indptr, np.int64)),
                          shape=(len(order), len(columns)))
    return InteractionMatrix(order, tuple(product_ids), tuple(token_ids), x, tuple(segments), recent, now_s)


def label_matrix(purchases: Iterable[Purchase], customer_ids: Sequence[str], product_ids: Sequence[str],
                 start_s: float, end_s: float) -> sparse.csr_matrix:
    """Bool CSR [C, P]: who bought what in ``[start_s, end_s)``."""
    rows = {c: i for i, c in enumerate(customer_ids)}
    cols = {p: j for j, p in enumerate(product_ids)}
    r, c = [], []
    for p in purchases:
        if start_s <= p.at_s < end_s and p.customer_id in rows and p.product_id in cols:
            r.append(rows[p.customer_id])
            c.append(cols[p.product_id])
    m = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(customer_ids), len(product_ids)))
    m.data[:] = 1.0
    return m

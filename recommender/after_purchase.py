"""After purchase: which products a purchase makes more likely in the weeks that follow, and how fast
that fades, learned from the order of purchases in the event log.

``fit_transitions(purchases, product_ids, single_hold, start_s, end_s) -> Transitions``

For every ordered pair (X, Y) it compares two rates of buying Y, both per customer-day *at risk*
(Y not held yet, or Y can be held many times):

- **recent**: in the ``window_days`` after a purchase of X that falls in ``[start_s, end_s)``;
- **holder**: while holding X, outside that window (X held from before ``start_s``, or bought
  more than ``window_days`` ago).

``lift = (n_recent + PRIOR_EVENTS) / (expected_recent + PRIOR_EVENTS)``, with ``expected_recent``
= recent customer-days at risk x the holder rate (itself shrunk toward Y's overall rate by one
pseudo-event), so a pair seen a couple of times stays near 1. ``excess = max(lift - 1, 0)`` is
the stored transition: how much more likely Y is, relative to a customer who simply holds X, right
after X was bought. Normalising by holders (not by all customers) is what separates the
sequential signal from co-holding: "holds a mortgage -> holds home insurance" is what the
next-purchase layer already learns from the held products; what is left here is the extra chance
in the weeks after the mortgage.

The fade: the recent window is cut into lag bins of ``bin_days``; over the pairs with a clear
lift, the half-life is the one whose exponential fade, applied to the days at risk in each bin,
gives the mean lag of the purchases above the holder rate that was seen (``half_life_days``;
``None`` when the data cannot tell, e.g. too few pairs).

Why hand-written and not ``implicit.nearest_neighbours`` (BM25Recommender, CosineRecommender):
those score co-occurrence in an unordered user x item matrix; here the order, the lag and the
time at risk matter, and the normaliser is a rate among holders, which they have no notion of.

Times are UTC epoch seconds; arrays are in ``product_ids`` order; ``transitions[x, y]`` >= 0,
zero diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
from scipy import sparse

DAY_S = 86_400.0
#: Pseudo-events that pull a pair's lift toward 1 (no effect) when it was seen rarely.
PRIOR_EVENTS = 5.0
#: A pair counts for the half-life estimate when seen this often after X, with at least this lift.
HALF_LIFE_MIN_EVENTS = 5
HALF_LIFE_MIN_LIFT = 2.0
HALF_LIFE_BOUNDS_DAYS = (2.0, 120.0)


@dataclass(frozen=True)
class Transitions:
    """``excess`` [P, P]: lift - 1 of buying Y in the window after X, against holders of X.
    ``recent_events`` [P, P]: Y purchases seen in that window; ``half_life_days``: the fade the
    data shows (``None`` when it cannot tell)."""

    excess: np.ndarray
    recent_events: np.ndarray
    half_life_days: float | None
    window_days: float
    info: dict[str, Any]


def _purchase_arrays(purchases: Iterable[Any], product_index: dict[str, int], end_s: float
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    cust: dict[str, int] = {}
    rows, cols, times = [], [], []
    for p in purchases:
        j = product_index.get(p.product_id)
        if j is None or p.at_s >= end_s:
            continue
        rows.append(cust.setdefault(p.customer_id, len(cust)))
        cols.append(j)
        times.append(float(p.at_s))
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64), np.asarray(times, np.float64)


def fit_transitions(purchases: Iterable[Any], product_ids: Sequence[str], single_hold: np.ndarray,
                    start_s: float, end_s: float, window_days: float = 60.0,
                    bin_days: float = 5.0) -> Transitions:
    """Learn after-purchase transitions from ``purchases`` (objects with ``customer_id``,
    ``product_id``, ``at_s``; any order) before ``end_s``; triggers are the purchases in
    ``[start_s, end_s)`` (older ones only make a customer a holder). See the module docstring."""
    index = {pid: j for j, pid in enumerate(product_ids)}
    rows, cols, times = _purchase_arrays(purchases, index, end_s)
    return transitions_from_arrays(rows, cols, times, single_hold, start_s, end_s, window_days, bin_days)


def transitions_from_arrays(rows: np.ndarray, cols: np.ndarray, times: np.ndarray, single_hold: np.ndarray,
                            start_s: float, end_s: float, window_days: float = 60.0,
                            bin_days: float = 5.0) -> Transitions:
    """``fit_transitions`` on purchases given as arrays: customer row (0..C-1), product column
    (index into the catalog order of ``single_hold``), time (UTC epoch s); those at or after
    ``end_s`` are ignored."""
    p = len(single_hold)
    keep = times < end_s
    rows, cols, times = rows[keep], cols[keep], times[keep]
    customers = int(rows.max()) + 1 if len(rows) else 0
    key = rows * p + cols
    order = np.lexsort((times, key))
    key, stamps = key[order], times[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    ends = np.r_[starts[1:], len(key)] - 1
    first = np.full(customers * p, np.inf)
    first[key[starts]] = stamps[starts]
    first = first.reshape(customers, p)
    last = np.full(customers * p, -np.inf)
    last[key[ends]] = stamps[ends]
    last = last.reshape(customers, p)
    multi = ~np.asarray(single_hold, dtype=bool)
    window_s = window_days * DAY_S

    edges_s = np.append(np.arange(0.0, window_s, bin_days * DAY_S), window_s)  # lag bins after X
    n_recent = np.zeros((len(edges_s) - 1, p, p))  # [lag bin, X, Y]
    e_recent = np.zeros((len(edges_s) - 1, p, p))  # customer-days at risk
    trig_all = np.where(last >= start_s, last, np.nan)  # [c, X] the newest purchase of X in the period
    seen_y = np.where(multi[None, :], last, first)  # Y's purchase (single-hold: the first; multi-hold:
    # the newest before end_s, an approximation: one event per window)

    # Holders of X from before the period (X not bought in it) are at risk of Y from start_s on,
    # the same for every such X: one [c, Y] row of events and days, summed by a product.
    ev0, days0 = _at_risk(np.full((customers, 1), float(start_s)), np.full((customers, 1), float(end_s)),
                          first, seen_y, multi)
    holder0 = ((first < start_s) & np.isnan(trig_all)).astype(np.float64)  # [c, X]
    n_hold = holder0.T @ ev0.astype(np.float64)
    e_hold = holder0.T @ days0

    # Each purchase of X in the period (the newest per customer and X): the lag bins after it,
    # then holding X once its window has passed. One row per (customer, X), summed into X's row.
    c_i, x_i = np.nonzero(~np.isnan(trig_all))
    by_x = sparse.csr_matrix((np.ones(len(x_i)), (x_i, np.arange(len(x_i)))), shape=(p, len(x_i)))
    t = trig_all[c_i, x_i][:, None]  # [n, 1]
    f, sy = first[c_i], seen_y[c_i]  # [n, Y]
    # At risk of Y from X's purchase until Y is bought, the window ends or the log does.
    at_risk = multi[None, :] | ~(f < t)
    horizon = np.minimum(t + window_s, end_s)
    bought = at_risk & (sy > t) & (sy < horizon)
    days = np.where(at_risk, np.minimum(horizon, np.where(bought, sy, np.inf)) - t, 0.0) / DAY_S
    days = np.clip(days, 0.0, None)
    for k in range(len(edges_s) - 1):
        lo_d, width_d = edges_s[k] / DAY_S, (edges_s[k + 1] - edges_s[k]) / DAY_S
        e_recent[k] += by_x @ np.clip(days - lo_d, 0.0, width_d)
    r_i, y_i = np.nonzero(bought)
    lag_bin = np.minimum(np.searchsorted(edges_s, sy[r_i, y_i] - t[r_i, 0], side="right") - 1, len(edges_s) - 2)
    flat = (lag_bin * p + x_i[r_i]) * p + y_i
    n_recent += np.bincount(flat, minlength=n_recent.size).reshape(n_recent.shape)
    after = t + window_s
    ev, days_after = _at_risk(after, np.full_like(after, end_s), f, sy, multi)
    n_hold += by_x @ ev.astype(np.float64)
    e_hold += by_x @ days_after

    overall_rate = (n_hold.sum(0) + n_recent.sum((0, 1)) + 1.0) / (e_hold.sum(0) + e_recent.sum((0, 1)) + 1.0)
    holder_rate = (n_hold + 1.0) / (e_hold + 1.0 / overall_rate[None, :])
    events = n_recent.sum(0)
    expected = e_recent.sum(0) * holder_rate
    lift = (events + PRIOR_EVENTS) / (expected + PRIOR_EVENTS)
    excess = np.maximum(lift - 1.0, 0.0)
    np.fill_diagonal(excess, 0.0)
    mid_days = 0.5 * (edges_s[:-1] + edges_s[1:]) / DAY_S
    half_life, half_info = _half_life(n_recent, e_recent, holder_rate, lift, mid_days)
    info = {"triggers": int((~np.isnan(trig_all)).sum()),
            "recent_events": int(events.sum()), "pairs_lift_2x": int((lift >= 2.0).sum()), **half_info}
    return Transitions(excess, events, half_life, window_days, info)


def _at_risk(a: np.ndarray, b: np.ndarray, held_y_from: np.ndarray, seen_y: np.ndarray,
             multi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Purchases of Y in ``(a, b)`` and days at risk of one (until Y is bought, never while a
    single-hold Y is held), for bounds ``a``, ``b`` broadcasting against ``held_y_from`` and
    ``seen_y`` (times Y is held from / was bought, inf when never) -> (bool, float days)."""
    risk_from = np.where(multi, a, np.where(held_y_from < a, np.inf, a))
    stop = np.minimum(b, np.where(seen_y > risk_from, seen_y, np.inf))
    with np.errstate(invalid="ignore"):
        days = np.nan_to_num(np.clip(stop - risk_from, 0.0, None) / DAY_S, nan=0.0, posinf=0.0)
        events = (seen_y >= risk_from) & (seen_y < b) & (seen_y > a)
    return events, days


def _half_life(n_recent: np.ndarray, e_recent: np.ndarray, holder_rate: np.ndarray, lift: np.ndarray,
               lag_days: np.ndarray) -> tuple[float | None, dict[str, Any]]:
    """Half-life (days) of the excess after X, pooled over the pairs with a clear lift: the one
    whose exponential fade, applied to the days at risk in each lag bin (midpoints ``lag_days``),
    gives the mean lag of the excess purchases that was seen (method of moments)."""
    strong = (n_recent.sum(0) >= HALF_LIFE_MIN_EVENTS) & (lift >= HALF_LIFE_MIN_LIFT)
    np.fill_diagonal(strong, False)
    if not strong.any():
        return None, {"half_life_pairs": 0}
    extra = n_recent - e_recent * holder_rate[None]  # [bin, X, Y] purchases above the holder rate
    pair_rate = extra.sum(0) / np.maximum(e_recent.sum(0), 1e-9)  # each pair's mean excess rate
    excess_by_lag = extra[:, strong].sum(1)  # [bin]
    exposure_by_lag = (e_recent[:, strong] * np.maximum(pair_rate[strong], 0.0)).sum(1)  # [bin]
    info: dict[str, Any] = {"half_life_pairs": int(strong.sum()),
                            "excess_by_lag": [round(float(v), 1) for v in excess_by_lag]}
    total = excess_by_lag.sum()
    if not total > 0 or not exposure_by_lag.sum() > 0:
        return None, info
    seen = float((excess_by_lag * lag_days).sum() / total)
    lo_hl, hi_hl = HALF_LIFE_BOUNDS_DAYS

    def mean_lag(half_life: float) -> float:  # rises with the half-life
        fade = exposure_by_lag * 0.5 ** (lag_days / half_life)
        return float((fade * lag_days).sum() / fade.sum())

    if seen <= mean_lag(lo_hl):
        return lo_hl, info
    if seen >= mean_lag(hi_hl):
        return hi_hl, info
    a, b = lo_hl, hi_hl
    for _ in range(60):
        mid = 0.5 * (a + b)
        if mean_lag(mid) < seen:
            a = mid
        else:
            b = mid
    return round(0.5 * (a + b), 2), info

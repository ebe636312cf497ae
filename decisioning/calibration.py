"""Calibration: the model's propensity corrected by what customers answered online.

The model's propensity ranks one customer's products well but is no calibrated probability of
acceptance (a chance to buy, scored against other products and customers; how far it is from the
rate at which offers are accepted differs by product, and by channel: a teller face to face
sells more of the same offers than a mobile slot). So the step corrects it multiplicatively. The
evidence (``domain.learning.Evidence``, decayed to ``now_s``) counts, per field, the acceptances
observed and those the model expected (the propensities of the answered offers, summed); every
ratio observed / expected has a Gamma posterior (``domain.learning.ratio_posterior``, the prior
worth k = ``starting_evidence`` acceptances), and the levels are:

- R: all products on all channels (field ``*``), prior mean 1;
- R_c: all products on channel c (``*@c``), prior mean R: how the channel's offers sell against
  the model's scores;
- theta: the product (``<product>@c`` on every channel it was shown on), standardised by the
  channels: its accepts against sum_c R_c x expected_c, prior mean 1. The channel mix is taken
  out, so a product shown mostly where offers sell well (a teller, an agent) does not look
  better than it is on a mobile slot;
- phi: the product on the request's channel c (``<product>@c``), its accepts there against
  R_c x its expected there, prior mean theta: what the product sells on this channel beyond what
  the channel and the product each explain (a product agents sell well need not sell in the app);
- rho: the customer's segment (``<product>|<segment>``), once it holds ``segment_min_evidence``
  decayed answers: its accepts against its expected x the product's own ratio
  (``<product>``, prior mean R), prior mean 1.

The candidate's calibrated value on channel c is

    propensity x R_c x phi x rho,   phi = (k + accepts_c) / (k / theta + R_c x expected_c),
                                    theta = (k + accepts) / (k + sum_c R_c x expected_c)

(with one channel and a model calibrated on average, R_c = 1 and phi = theta: propensity x
(k + accepts) / (k + expected)). phi and rho multiply every customer's propensity for the product alike, so each
customer's own order of products the answers agree with is kept, while a product whose
acceptance drifts down (or up) against what the model foresaw moves down (or up) for everybody;
a product nobody answered yet has phi = theta = 1, the scale of the channel.

- on an exploit channel the candidate is ranked by that value; with no evidence at all the step
  does nothing, so the ranking is exactly the model's;
- on a channel in ``explore_channels`` by propensity x R_c x rho x one draw of phi from its
  Gamma posterior (the request's seeded generator), with or without evidence: a product few
  customers have answered has a wide posterior and is sometimes ranked up, so it gets answers.

The value replaces the propensity in the priority (``score`` = value x the similar-after-purchase
factor, then arbitration multiplies in value, channel fit and lever), so the boost and the levers
act on it as they act on the propensity. ``Offer.propensity`` stays the model's.

``thompson_probabilities`` estimates, for the offers a Thompson-sampled ranking kept, the
probability that the policy puts each of them at its position: a Monte Carlo estimate over
``PROPENSITY_DRAWS`` draws of the whole ranking (vectorised; docs/LOOP.md has its cost and
error).
"""

from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from decisioning.context import Context, Offer
from decisioning.experiment import LoopParams
from decisioning.memo import Memo
from decisioning.scoring import similar_weight
from domain.learning import ALL_PRODUCTS, DAY_S, Evidence, decayed_to, ratio

#: Draws of the whole ranking behind one logged Thompson probability (standard error at most
#: 0.5 / sqrt(PROPENSITY_DRAWS) = 0.0625; see docs/LOOP.md for the cost and the error).
PROPENSITY_DRAWS = 64
#: Candidates whose score stays below the k-th best lower bound within this many standard
#: deviations of their posterior are left out of the draws (they almost never reach the top k).
PRUNE_SD = 6.0


def _fields(evidence: Mapping[str, Evidence], now_s: float,
            params: LoopParams) -> Callable[[str], Evidence | None]:
    """A reader of one evidence field decayed to ``now_s`` (None: absent, or the older stored form)."""
    def field(name: str) -> Evidence | None:
        found = evidence.get(name)
        if found is None or found.expected is None:
            return None
        return decayed_to(found, now_s, params.evidence_half_life_days)
    return field


def product_ratio(evidence: Mapping[str, Evidence], product_id: str, now_s: float, params: LoopParams) -> float:
    """theta of the module docstring: the posterior mean of a product's ratio observed / expected
    acceptances over every channel it was shown on, each channel's expected scaled by that
    channel's ratio R_c (1 when nobody answered it yet). Every customer's calibrated value of the
    product moves with it: the bench follows a planted drift with it (``bench/loop.py``)."""
    field, k = _fields(evidence, now_s, params), params.starting_evidence
    overall = ratio(field(ALL_PRODUCTS), 1.0, k)
    channels = {name.partition("@")[2] for name in evidence if name.startswith(f"{product_id}@")}
    accepts = standardised = 0.0
    for shown_on in sorted(channels):
        found = field(f"{product_id}@{shown_on}")
        if found is not None:
            assert found.expected is not None
            accepts += found.accepts
            standardised += ratio(field(f"{ALL_PRODUCTS}@{shown_on}"), overall, k) * found.expected
    return (k + accepts) / (k + standardised)


def posterior_for(evidence: Mapping[str, Evidence], product_id: str, segment: str | None, channel: str,
                  now_s: float, params: LoopParams) -> tuple[float, float]:
    """(shape, rate) of the Gamma posterior of calibrated value / propensity of one product for a
    customer of ``segment`` on ``channel``, the evidence decayed to ``now_s`` (module docstring):
    the posterior of phi, its rate divided by R_c x rho. (The reference; the step does the
    same through ``_Informed``, faster.)"""
    field, k = _fields(evidence, now_s, params), params.starting_evidence
    overall = ratio(field(ALL_PRODUCTS), 1.0, k)
    theta = product_ratio(evidence, product_id, now_s, params)
    here = ratio(field(f"{ALL_PRODUCTS}@{channel}"), overall, k)
    on_channel = field(f"{product_id}@{channel}")
    shape, rate = k, k / theta  # phi: the product on this channel, prior mean theta
    if on_channel is not None:
        assert on_channel.expected is not None
        shape, rate = k + on_channel.accepts, k / theta + here * on_channel.expected
    rate /= here
    if segment:
        in_segment = field(f"{product_id}|{segment}")
        if in_segment is not None and in_segment.answers >= params.segment_min_evidence:
            assert in_segment.expected is not None
            product = ratio(field(product_id), overall, k)
            rate /= (k + in_segment.accepts) / (k + in_segment.expected * product)
    return shape, rate


Counts = tuple[float, float, float, float]  # accepts, answers, as_of_s, expected


class _Split:
    """The evidence mapping split once per read of it (each read is a new mapping), not per
    request; values without ``expected`` (the older stored form) left out."""

    def __init__(self, evidence: Mapping[str, Evidence]) -> None:
        self.pooled: dict[str, Counts] = {}  # product id (or ``*``) -> its counts over all channels
        self.segments: dict[str, dict[str, Counts]] = {}  # segment -> product id -> counts
        self.channels: dict[str, list[tuple[str, Counts]]] = {}  # product id (or ``*``) -> [(channel, counts)]
        for name, e in evidence.items():
            if e.expected is None:
                continue
            counts = (e.accepts, e.accepts + e.others, e.as_of_s, e.expected)
            product_id, at, channel = name.partition("@")
            if at:
                self.channels.setdefault(product_id, []).append((channel, counts))
                continue
            product_id, _, segment = name.partition("|")
            if segment:
                self.segments.setdefault(segment, {})[product_id] = counts
            else:
                self.pooled[product_id] = counts
        for found in self.channels.values():
            found.sort()


_SPLIT: Memo[_Split] = Memo(max_entries=4)


class _Informed:
    """``posterior_for`` for one request (the channel's and every channel's R computed once)."""

    def __init__(self, evidence: Mapping[str, Evidence], segment: str | None, channel: str, now_s: float,
                 params: LoopParams) -> None:
        split = _SPLIT.get((evidence,), (), lambda: _Split(evidence))
        self.pooled, self.channels = split.pooled, split.channels
        self.in_segment = split.segments.get(segment, {}) if segment else {}
        self.now_s, self.minimum = now_s, params.segment_min_evidence
        self.prior = k = params.starting_evidence
        self.half_life_s = params.evidence_half_life_days * DAY_S
        self.factors: dict[float, float] = {}  # as_of_s -> decay to now (domain.learning's factor)
        every = self.pooled.get(ALL_PRODUCTS)
        if every is None:
            self.overall = 1.0
        else:
            f = self.factor(every[2])
            self.overall = (k + every[0] * f) / (k + every[3] * f)
        base = k / self.overall
        self.by_channel: dict[str, float] = {}  # channel -> R_c
        for shown_on, counts in self.channels.get(ALL_PRODUCTS, ()):
            f = self.factor(counts[2])
            self.by_channel[shown_on] = (k + counts[0] * f) / (base + counts[3] * f)
        self.here = self.by_channel.get(channel, self.overall)
        self.channel = channel

    def factor(self, as_of_s: float) -> float:
        f = self.factors.get(as_of_s)
        if f is None:
            elapsed_s = self.now_s - as_of_s
            f = self.factors[as_of_s] = 1.0 if elapsed_s <= 0 else 0.5 ** (elapsed_s / self.half_life_s)
        return f

    def __call__(self, product_id: str) -> tuple[float, float]:
        k, factor = self.prior, self.factor
        accepts = standardised = 0.0
        shape, rate = k, k  # phi without evidence: the prior, mean theta = 1
        shown = self.channels.get(product_id)
        if shown is not None:
            by_channel, overall, channel = self.by_channel, self.overall, self.channel
            here_accepts = here_expected = None
            for shown_on, counts in shown:
                f = factor(counts[2])
                accepts += counts[0] * f
                standardised += by_channel.get(shown_on, overall) * counts[3] * f
                if shown_on == channel:
                    here_accepts, here_expected = counts[0] * f, counts[3] * f
            rate = k * (k + standardised) / (k + accepts)  # k / theta
            if here_accepts is not None:
                shape, rate = k + here_accepts, rate + self.here * here_expected
        rate /= self.here
        found = self.in_segment.get(product_id)
        if found is not None:
            f = factor(found[2])
            if found[1] * f >= self.minimum:
                product = self.pooled.get(product_id)
                if product is None:
                    ratio_p = self.overall
                else:
                    g = factor(product[2])
                    ratio_p = (k + product[0] * g) / (k / self.overall + product[3] * g)
                rate *= (k + found[3] * f * ratio_p) / (k + found[0] * f)
        return shape, rate


#: A product's posterior for one (evidence read, segment, channel) is reused by the requests that
#: follow while their time is within this share of a half-life of the one it was computed at
#: (the decay between them then changes it by less than 1e-6 of itself).
REUSE_HALF_LIVES = 1e-6


class _Posteriors:
    """The posteriors of the latest evidence read, per (segment, channel, loop settings): a dict
    product id -> (shape, rate) filled as requests ask (``_Informed``), so a request computes
    only what no request of the same kind has since the read (the API swaps in a new mapping
    every ``NBO_LOOP__REFRESH_MS``, which starts afresh)."""

    def __init__(self) -> None:
        self.evidence: Mapping[str, Evidence] | None = None
        self.tables: dict[tuple[str | None, str, int], tuple[LoopParams, _Informed, dict[str, tuple[float, float]]]] = {}

    def get(self, evidence: Mapping[str, Evidence], segment: str | None, channel: str, now_s: float,
            params: LoopParams) -> tuple[_Informed, dict[str, tuple[float, float]]]:
        if evidence is not self.evidence:
            self.evidence, self.tables = evidence, {}
        tables = self.tables
        key = (segment, channel, id(params))
        found = tables.get(key)
        if found is None or found[0] is not params or abs(now_s - found[1].now_s) > \
                REUSE_HALF_LIVES * params.evidence_half_life_days * DAY_S:
            if len(tables) > 256:
                tables.clear()
            found = tables[key] = (params, _Informed(evidence, segment, channel, now_s, params), {})
        return found[1], found[2]


_POSTERIORS = _Posteriors()


def calibration(ctx: Context) -> None:
    params, evidence = ctx.loop, ctx.evidence
    explore = ctx.channel in params.explore_channels
    if not explore and not evidence:
        return  # nothing learned yet: the model's propensity
    informed, known = _POSTERIORS.get(evidence, ctx.state.vs_segment, ctx.channel, ctx.now_s, params)
    weight = similar_weight(ctx.model, ctx.policy)
    if not explore:
        if not informed.pooled and not informed.channels and not informed.in_segment:
            return  # no evidence of this form (only the older one): the model's propensity
        for pid, offer in ctx.candidates.items():
            posterior = known.get(pid)
            if posterior is None:
                posterior = known[pid] = informed(pid)
            shape, rate = posterior
            propensity = offer.propensity
            if propensity > 0:
                offer.score *= shape / rate
                offer.calibrated = propensity * shape / rate
            else:
                _rank_by(offer, 0.0, weight)
        return
    offers = list(ctx.candidates.values())
    if not offers:
        return
    shapes, rates = np.array([known.get(pid) or known.setdefault(pid, informed(pid)) for pid in ctx.candidates]).T
    propensities = np.array([o.propensity for o in offers])
    scales = propensities / rates  # the calibrated value ~ Gamma(shape, scale)
    samples = (ctx.rng.standard_gamma(shapes) * scales).tolist()
    for offer, shape, scale, sample in zip(offers, shapes.tolist(), scales.tolist(), samples):
        offer.posterior = (shape, scale)
        _rank_by(offer, sample, weight)


def _rank_by(offer: Offer, value: float, weight: float) -> None:
    """Put ``value`` in the offer's priority in place of the model's propensity."""
    if offer.propensity > 0:
        offer.score *= value / offer.propensity
    else:
        offer.score = value * (1.0 + weight * offer.similar_boost) if offer.similar_boost > 0 else value
    offer.calibrated = value


def thompson_probabilities(pool: Sequence[Offer], kept: Sequence[Offer], rng: np.random.Generator,
                           draws: int = PROPENSITY_DRAWS) -> list[float]:
    """For each offer of ``kept`` (the top ``len(kept)`` of ``pool`` by ``score``, best first, as
    one Thompson sample ranked them), the estimated probability that ranking by a fresh sample
    puts it at its position. Every offer of ``pool`` carries ``posterior`` (shape, scale: the
    Gamma its value propensity x ratio was drawn from) and ``calibrated`` (its draw); its score is
    the draw times a factor that does not depend on it (similar boost, value, channel fit,
    lever). The estimate is the share of ``draws`` samples of the whole pool that rank it there,
    at least 0.5 / ``draws`` (a shown offer has a positive probability)."""
    k = len(kept)
    if k == 0:
        return []
    shapes = np.array([o.posterior[0] for o in pool])  # type: ignore[index]
    scales = np.array([o.posterior[1] for o in pool])  # type: ignore[index]
    factors = np.array([o.score / o.calibrated if o.calibrated else 0.0 for o in pool])
    index = {id(o): i for i, o in enumerate(pool)}
    kept_at = [index[id(o)] for o in kept]
    if len(pool) > k:  # leave out who cannot reach the top k (within PRUNE_SD sd of its posterior)
        mean = shapes * scales
        sd = np.sqrt(shapes) * scales
        high = factors * (mean + PRUNE_SD * sd)
        low = factors * np.maximum(0.0, mean - PRUNE_SD * sd)
        kth_low = np.partition(low, len(pool) - k)[len(pool) - k]
        keep = high >= kth_low
        keep[kept_at] = True
        positions = np.flatnonzero(keep)
        shapes, scales, factors = shapes[positions], scales[positions], factors[positions]
        remap = {int(p): i for i, p in enumerate(positions)}
        kept_at = [remap[i] for i in kept_at]
    scores = rng.standard_gamma(shapes, size=(draws, len(shapes))) * (scales * factors)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    counts = (top == np.array(kept_at)).sum(axis=0)
    return [max(float(c), 0.5) / draws for c in counts]

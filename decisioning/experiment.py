"""The experiment: which arm a customer is in, and what the control arm is offered.

Arms (docs/LOOP.md):

- ``treatment``: the ranked offers of the chain;
- ``control``: every rule of the chain still applies (eligibility, suitability, contact policy,
  daily caps, a lever or channel fit of 0), and the offers are drawn uniformly at random from the
  candidates those rules leave, or none at all on a channel in ``no_offer_channels``.

``arm_of(customer_id, channel, now_s, params)`` is a pure function: a keyed hash of
(salt, customer id, the UTC month of ``now_s``) read as a number u in [0, 1), and the customer is
in control on a channel when u < that channel's control share. The arms therefore rotate every
UTC month (a new draw of the same share), are the same on every replica and restart, and nest
across channels: a customer in control where the share is 2 % is in control where it is 3 % too.

Randomness comes in as a ``seed`` (the API derives it from the decision id, ``seed_from``); the
same seed gives the same choice, nothing reads a global generator. ``generator(seed)`` is the numpy
generator a ranking draws from (the Thompson sample and its probabilities).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Literal, Mapping, Sequence, TypeVar

import numpy as np

Arm = Literal["treatment", "control"]
TREATMENT: Arm = "treatment"
CONTROL: Arm = "control"

T = TypeVar("T")


@dataclass(frozen=True)
class LoopParams:
    """The closed loop's knobs on the decision side (``NBO_LOOP__*``, built by
    ``bootstrap.loop_params``). The defaults switch the experiment and exploration off, so a
    caller that passes none (offline evaluation, tools) ranks exactly as the model and policy say.

    - ``control_share`` in [0, 0.5]: share of customers in control on every channel, unless
      ``control_share_by_channel`` names the channel;
    - ``control_salt``: the key of the customer -> arm hash (a bank secret in production);
    - ``control_no_offer_channels``: channels where control customers get no offer;
    - ``explore_channels``: channels that rank by a Thompson sample of each product's posterior
      (the others by its mean);
    - ``starting_evidence`` (> 0): how many acceptances the prior of a product's ratio observed /
      expected is worth (``decisioning.calibration``);
    - ``segment_min_evidence`` (>= 0): decayed answers a product needs in the customer's segment
      before that segment's evidence is used instead of the product's overall evidence;
    - ``evidence_half_life_days`` (> 0): answers weigh half after this many days.
    """

    control_share: float = 0.0
    control_share_by_channel: Mapping[str, float] = field(default_factory=dict)
    control_salt: str = "nbo-control"
    control_no_offer_channels: frozenset[str] = frozenset()
    explore_channels: frozenset[str] = frozenset()
    starting_evidence: float = 5.0
    segment_min_evidence: float = 50.0
    evidence_half_life_days: float = 30.0

    def __post_init__(self) -> None:
        for name, share in [("control_share", self.control_share),
                            *[(f"control_share_by_channel.{c}", s) for c, s in self.control_share_by_channel.items()]]:
            if not 0.0 <= share <= 0.5:
                raise ValueError(f"{name}: expected a share in [0, 0.5], got {share!r}")
        if self.starting_evidence <= 0 or self.evidence_half_life_days <= 0 or self.segment_min_evidence < 0:
            raise ValueError("starting_evidence and evidence_half_life_days must be > 0, segment_min_evidence >= 0")

    def share(self, channel: str) -> float:
        """The control share on ``channel``."""
        return self.control_share_by_channel.get(channel, self.control_share)


#: No experiment, no exploration: rank as the model and the policy say.
NO_LOOP = LoopParams()


def month_of(now_s: float) -> str:
    """The UTC calendar month of ``now_s`` (UTC epoch seconds) as ``YYYY-MM``."""
    tm = time.gmtime(now_s)
    return f"{tm.tm_year:04d}-{tm.tm_mon:02d}"


def arm_draw(customer_id: str, now_s: float, salt: str) -> float:
    """The customer's number u in [0, 1) for the UTC month of ``now_s``: the first 8 bytes of a
    keyed BLAKE2b of the customer id and the month, over 2**64."""
    digest = hashlib.blake2b(f"{customer_id}|{month_of(now_s)}".encode(), digest_size=8,
                             key=salt.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64


def arm_of(customer_id: str, channel: str, now_s: float, params: LoopParams) -> Arm:
    """``control`` when the customer's draw for this month is below the channel's share."""
    share = params.share(channel)
    if share <= 0.0:
        return TREATMENT
    return CONTROL if arm_draw(customer_id, now_s, params.control_salt) < share else TREATMENT


def seed_from(text: str) -> int:
    """A 64-bit seed from a string (the API's decision id): the same text, the same seed."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def uniform_choice(pool: Sequence[T], k: int, seed: int) -> tuple[list[T], float]:
    """``k`` items of ``pool`` drawn uniformly without replacement, in the order drawn, and the
    probability of each at its position: for a uniform draw every item is equally likely at every
    position, 1/len(pool) (k = 1 is the one-slot case). An empty pool or k = 0 gives ([], 0)."""
    n = len(pool)
    if n == 0 or k <= 0:
        return [], 0.0
    chosen = random.Random(seed).sample(list(pool), min(k, n))
    return chosen, 1.0 / n


_MASK_64, _MASK_128 = (1 << 64) - 1, (1 << 128) - 1
#: An odd 128-bit multiplier (the golden ratio's bits) and an offset: a seed's starting point on
#: PCG64's cycle of 2**128 (seeds 0, 1, 2, ... land far apart), and the stream's increment (odd).
_SPREAD, _OFFSET = 0x9E3779B97F4A7C15F39CC0605CEDC835, 0x2545F4914F6CDD1D5851F42D4C957F2D
_INCREMENT = 0xDA3E39CB94B95BDB1D2D1F4FA2F38B01 | 1
_THREAD = threading.local()


def generator(seed: int) -> np.random.Generator:
    """The numpy generator of a request's ``seed`` (a 64-bit int): the same seed, the same draws.

    It is this thread's one PCG64 generator with its state set from the seed (~1-2 us), where
    building a new one (``np.random.default_rng``: a SeedSequence, then PCG64) costs ~15 us a
    request; so it is valid until the next ``generator`` call on the same thread (one ranking
    draws from it from start to end without yielding)."""
    g = getattr(_THREAD, "generator", None)
    if g is None:
        g = _THREAD.generator = np.random.Generator(np.random.PCG64(0))
    g.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": 0, "uinteger": 0,
                             "state": {"state": ((seed & _MASK_64) * _SPREAD + _OFFSET) & _MASK_128,
                                       "inc": _INCREMENT}}
    return g

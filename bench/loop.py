"""The closed loop on simulated traffic, through the real API, stream worker and broker.

Each run starts its own embedded broker and Redis, a stream worker and the offer API (the
``nbo demo`` start-up path, ``services.stack``), with a model trained on another simulated bank.
Then, day by day:

1. the simulated bank's day (deposits, hotline calls, card payments, its own purchases) is
   published and the bench waits until the worker has taken all of it;
2. that day's visits (``simulator.visits``: a teller at every counter transaction, an agent on
   every hotline call, the app opened by app users at ``--mobile-rate``) ask the API for offers,
   in time order, a few dozen at a time;
3. each shown offer is answered from the simulator's true propensity (``draw_offer_response``),
   the touchpoint posts the answer (``POST /v1/outcomes``) and an acceptance becomes a sale
   (``ProductPurchased`` naming the decision) the simulator remembers.

Half way (``--drift-day``) a drift is planted: the appeal of the product treatment customers
accepted most so far halves, that of the one they accepted second most doubles (both chosen in
the first run and planted the same in the second; ``Simulator.scale_appeal``: the answers to
its offers and its daily hazard are multiplied). The same traffic (same seed) runs twice:
online learning off (``NBO_LOOP__ONLINE=false`` and ``NBO_LOOP__EXPLORE_CHANNELS=[]``: the model
alone, deterministic on every channel) and on (the defaults: the online evidence calibrating
every channel, plus Thompson sampling on mobile, ``NBO_LOOP__EXPLORE_CHANNELS=["mobile"]``).

Time: the API decides at the wall clock, so every simulated day's events are stamped with the
wall-clock time they are published at (in their order within the day), and a simulated day
lasts ``--day-s`` seconds of wall time (the bench waits out a day done sooner); the backdated
history keeps its own times. The online evidence's half-life is ``--evidence-half-life``
simulated days in that time (``NBO_LOOP__EVIDENCE_HALF_LIFE_DAYS``); other decays and a
decline's cool-down (days of wall-clock time) see the run as recent. Simulated hours (day x 24 +
the visit's hour) are what the drift's figures count.

Figures: acceptance per shown offer (accepted outcomes / offers shown) in the treatment and
control arms of the online run, their relative lift with a delta-method 95 % interval
(``recommender.ope.relative_lift``), the treatment acceptance with online learning off and on
(and after the drift, with the interval of online over static), and how the ranking follows
the drift: each drifted product's learned multiplier (``decisioning.calibration.product_ratio``
on the evidence in Redis, read after every chunk of visits of the online run) and
``drift_recovery_hours``, the simulated hours until both multipliers are half way on the log
scale to their level at the drift x its factor (``simulator.visits.multiplier_follow_hours``;
null when one is not by the end); and each product's share of top offers online against
static's (``simulator.visits.drift_recovery_hours`` with a baseline). The offline run's
decision log is then evaluated off-policy (``recommender.ope``): the serving model replayed
through the chain on the states at decision time must match its treatment arm's observed rate
within the IPS interval on each customer's first decision, and the control arm's mean
importance weight must cover 1.

    .venv/bin/python bench/loop.py                          # 4,000 customers x 12 days, twice (~6 min)
    .venv/bin/python bench/loop.py --customers 12000 --day-s 36   # three times the evidence (~17 min)
    .venv/bin/python bench/loop.py --customers 500 --days 4 --json
    .venv/bin/python bench/loop.py --write-docs             # the "bench/loop.py" section of docs/BENCHMARKS.md

``--json``: the last line of stdout is ``{"days", "decisions", "treatment_rate", "control_rate",
"lift", "lift_ci_low", "lift_ci_high", "static_accept_rate", "online_accept_rate",
"drift_recovery_hours", ...}``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import orjson  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bootstrap import feature_params, load_settings, model_registry, state_store  # noqa: E402
from bootstrap.settings import Settings  # noqa: E402
from adapters.keys import learn_key  # noqa: E402
from adapters.learning_reader import parse_evidence  # noqa: E402
from decisioning.calibration import product_ratio  # noqa: E402
from decisioning.experiment import LoopParams  # noqa: E402
from decisioning.policy import load_policy  # noqa: E402
from domain.catalog import load_catalog  # noqa: E402
from recommender.ope import evaluate, first_decisions, relative_lift, replay_slates, units_from_logs  # noqa: E402
from schemas.codec import decode, encode  # noqa: E402
from schemas.topics import INPUT_TOPICS, OFFER_DECISIONS, OFFER_OUTCOMES, TOPIC_FOR_TYPE, partition_key  # noqa: E402
from services.runtime import start_servers  # noqa: E402
from services.stack import DEV_KEYS, Stack  # noqa: E402
from simulator.bank import DAY_S, Simulator  # noqa: E402
from simulator.visits import (  # noqa: E402
    VISIT_CHANNELS, Visit, answer_offers, day_visits, drift_recovery_hours, multiplier_follow_hours, sale_event)

SECTION = "## bench/loop.py"
CONCURRENCY = 16  # requests in flight
CHUNK = 48  # visits decided together before they are answered
RECOVERY_WINDOW = 200  # decisions in the rolling share of top offers


@dataclass
class Shown:
    """One decision as the bench saw it."""

    decision_id: str
    customer: int
    channel: str
    arm: str
    sim_hour: float
    products: tuple[str, ...]
    accepted: int
    took: tuple[str, ...] = ()  # the products accepted
    # the acceptances the shown offers were worth: the sum of the chances their answers were drawn
    # with (``Answer.chance``), the outcome without the noise of the draw
    expected: float = 0.0


@dataclass
class RunResult:
    mode: str
    shown: list[Shown] = field(default_factory=list)
    wall_s: float = 0.0
    decided: int = 0  # every answer of the offer API (``shown`` leaves out degraded and empty ones)
    events: int = 0
    outcomes_posted: int = 0
    sales: int = 0
    drift: dict[str, str] = field(default_factory=dict)
    day_wall_s: list[float] = field(default_factory=list)  # wall seconds each simulated day lasted
    # (simulated hour, product id -> its learned multiplier theta) after each chunk of visits: the
    # online evidence in Redis as the ranking reads it (``decisioning.calibration.product_ratio``)
    learned: list[tuple[float, dict[str, float]]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)

    def rate(self, arm: str, since_hour: float = -1.0) -> tuple[int, int]:
        """(accepted, shown) offers of ``arm`` from ``since_hour`` on."""
        picked = [s for s in self.shown if s.arm == arm and s.sim_hour >= since_hour]
        return sum(s.accepted for s in picked), sum(len(s.products) for s in picked)


def restamp(records: list[bytes], base: datetime) -> list[bytes]:
    """The day's records stamped with wall-clock times from ``base`` on, 1 us apart, in order."""
    out = []
    for k, raw in enumerate(records):
        event = orjson.loads(raw)
        event["occurred_at"] = (base + timedelta(microseconds=k)).isoformat().replace("+00:00", "Z")
        out.append(orjson.dumps(event))
    return out


async def send(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> httpx.Response:
    """One request, sent again (at most twice) when the connection dropped under it (a kept-alive
    connection the server closed as it was reused); an outcome is idempotent (its event id), an
    offer request asked again is a new decision, its first one unanswered."""
    for attempt in range(3):
        try:
            return await client.request(method, url, **kwargs)
        except httpx.TransportError:
            if attempt == 2:
                raise
            await asyncio.sleep(0.05)
    raise AssertionError("unreachable")


class Loop:
    """One run of the loop on one stack."""

    def __init__(self, args: argparse.Namespace, mode: str, registry_dir: Path, work: Path) -> None:
        self.args = args
        self.mode = mode
        self.work = work / mode
        self.work.mkdir(parents=True)
        self.result = RunResult(mode)
        self.catalog = load_catalog(args.catalog) if args.catalog else load_catalog()
        self.settings: Settings = load_settings(data_dir=self.work / "data").model_copy(
            update={"model": load_settings().model.model_copy(update={"registry_dir": registry_dir})})
        self.registry_dir = registry_dir
        self.rng = np.random.default_rng([args.seed, 99])  # answers and sales: same draws in both runs
        self.events_file = open(self.work / "events.jsonl", "wb")
        # a simulated day lasts --day-s wall seconds: the evidence's half-life in wall-clock days
        # (--day-s 0, days as fast as they go: the product's half-life)
        self.half_life_days = args.evidence_half_life * args.day_s / DAY_S if args.day_s > 0 else None

    # ---- set-up -------------------------------------------------------------------------------
    def start(self) -> None:
        self.servers = start_servers(self.settings)
        env = {"NBO_DATA_DIR": str(self.work / "data"), "NBO_MODEL__REGISTRY_DIR": str(self.registry_dir),
               "NBO_REDIS__TIMEOUT_MS": "250", "NBO_API__RATE_PER_S": "100000", "NBO_API__RATE_BURST": "100000",
               "NBO_LOOP__CONTROL_SHARE": str(self.args.control_share),
               "NBO_LOOP__ONLINE": "true" if self.mode == "online" else "false"}
        if self.half_life_days is not None:  # the answers' decay in the bench's time
            env["NBO_LOOP__EVIDENCE_HALF_LIFE_DAYS"] = repr(self.half_life_days)
        # static: the model alone, deterministic on every channel; online: Thompson sampling on mobile
        env["NBO_LOOP__EXPLORE_CHANNELS"] = "[]" if self.mode == "static" else json.dumps(self.args.explore)
        if self.args.catalog:
            env["NBO_CATALOG__PATH"] = str(Path(self.args.catalog).resolve())
        self.stack = Stack(self.servers, self.work / "logs", extra_env=env)
        self.stack.start_worker()
        self.stack.start_api()
        self.store = state_store(self.settings.with_servers(self.servers.kafka_bootstrap, self.servers.redis_url))
        import redis

        self.redis = redis.Redis.from_url(self.servers.redis_url)
        self.loop_params = LoopParams(starting_evidence=self.settings.loop.starting_evidence,
                                      evidence_half_life_days=self.half_life_days or
                                      self.settings.loop.evidence_half_life_days)
        from kafka import KafkaProducer

        self.producer = KafkaProducer(bootstrap_servers=self.servers.kafka_bootstrap, acks="all", linger_ms=5,
                                      batch_size=256 * 1024, client_id="nbo-bench-loop")
        self.taken_base = self._taken()
        self.expected = 0

    def stop(self) -> None:
        self.events_file.close()
        self.redis.close()
        try:
            self.producer.close(timeout=10)
        finally:
            self.stack.stop()
            self.servers.stop()

    # ---- the worker ---------------------------------------------------------------------------
    def _taken(self) -> int:
        counters = self.store.counters()
        return sum(counters.get(name, 0) for name in ("applied", "duplicates", "dead_letters"))

    def publish(self, records: list[bytes]) -> None:
        """Publish encoded events to their topics and keep them for the OPE replay."""
        for raw in records:
            head = orjson.loads(raw)
            topic = TOPIC_FOR_TYPE[head["type"]]
            self.producer.send(topic, key=partition_key(head["customer_id"]), value=raw)
            if topic in INPUT_TOPICS:
                self.expected += 1
        if records:
            self.events_file.write(b"\n".join(records) + b"\n")
        self.result.events += len(records)

    def wait_worker(self, deadline_s: float = 300.0) -> None:
        """Until the worker has taken every record published so far (its own counters)."""
        self.producer.flush(timeout=60)
        deadline = time.monotonic() + deadline_s
        while self._taken() - self.taken_base < self.expected:
            for child in self.stack.children():
                if not child.alive():
                    raise SystemExit(f"{child.name} stopped:\n{child.tail(30)}")
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker took {self._taken() - self.taken_base} of {self.expected} records "
                                 f"in {deadline_s:.0f} s:\n{self.stack.worker.tail(30) if self.stack.worker else ''}")
            time.sleep(0.05)

    # ---- the day ------------------------------------------------------------------------------
    async def visit_chunk(self, client: httpx.AsyncClient, sim: Simulator, visits: list[Visit], day: int) -> None:
        gate = asyncio.Semaphore(CONCURRENCY)

        async def decide(v: Visit) -> dict:
            async with gate:
                if v.channel == "teller":
                    response = await send(client, "POST", "/v1/teller/offers", headers={"X-API-Key": DEV_KEYS["teller"]},
                                          json={"customer_id": v.customer_id, "transaction": v.transaction})
                elif v.channel == "mobile":
                    response = await send(client, "GET", f"/v1/mobile/customers/{v.customer_id}/slots",
                                          params={"n": 3}, headers={"X-API-Key": DEV_KEYS["mobile"]})
                else:
                    response = await send(client, "GET", f"/v1/customers/{v.customer_id}/offers",
                                          params={"channel": "call_centre"},
                                          headers={"X-API-Key": DEV_KEYS["call_centre"]})
                if response.status_code != 200:
                    raise SystemExit(f"offer API answered {response.status_code} on {v.channel}: {response.text}")
                return response.json()

        bodies = await asyncio.gather(*(decide(v) for v in visits))
        self.result.decided += len(bodies)
        if OFFER_DECISIONS in INPUT_TOPICS:  # the worker takes the API's decision records too
            self.expected += len(bodies)
        posts = []
        sales = []
        now = datetime.now(timezone.utc)
        for v, body in zip(visits, bodies):
            items = body.get("offers") if "offers" in body else body.get("slots", [])
            products = tuple(item["product_id"] for item in items)
            if body.get("degraded") or not products:
                continue
            answers = answer_offers(sim, v.customer, v.channel, products, self.rng, day,
                                    visit_key=(self.args.seed, v.customer, v.at_s, VISIT_CHANNELS.index(v.channel)))
            accepted = 0
            took = []
            for answer in answers:
                post = {"decision_id": body["decision_id"], "customer_id": v.customer_id,
                        "product_id": answer.product_id, "channel": v.channel, "outcome": answer.outcome}
                if answer.decline_reason:
                    post["decline_reason"] = answer.decline_reason
                posts.append(post)
                if answer.outcome == "accepted":
                    accepted += 1
                    took.append(answer.product_id)
                    sales.append(sale_event(sim, v.customer, answer.product_id, body["decision_id"], v.channel,
                                            now, self.rng))
            self.result.shown.append(Shown(body["decision_id"], v.customer, v.channel, body.get("arm", "treatment"),
                                           (v.at_s - sim.start_s) / 3600.0, products, accepted, tuple(took),
                                           sum(a.chance for a in answers)))

        async def record(post: dict) -> None:
            async with gate:
                for _ in range(5):
                    response = await send(client, "POST", "/v1/outcomes", json=post,
                                          headers={"X-API-Key": DEV_KEYS[post["channel"]]})
                    if response.status_code == 202:
                        return
                    if response.status_code != 503:
                        raise SystemExit(f"POST /v1/outcomes answered {response.status_code}: {response.text}")
                raise SystemExit("POST /v1/outcomes kept answering 503")

        await asyncio.gather(*(record(p) for p in posts))
        self.result.outcomes_posted += len(posts)
        self.expected += len(posts)
        self.result.sales += len(sales)
        self.publish([encode(e) for e in sales])
        if self.mode == "online" and visits:
            self.read_learned((visits[-1].at_s - sim.start_s) / 3600.0)

    def read_learned(self, sim_hour: float) -> None:
        """Every product's learned multiplier now, from the evidence the worker has written so far."""
        evidence, _ = parse_evidence(self.redis.hgetall(learn_key(self.settings.redis.key_prefix)))
        now_s = time.time()
        self.result.learned.append((sim_hour, {pid: product_ratio(evidence, pid, now_s, self.loop_params)
                                               for pid in self.catalog.ids}))

    def plant_drift(self, sim: Simulator, from_day: int) -> None:
        """The two products treatment customers accepted most so far: the first one's appeal
        halves, the second one's doubles (the products whose answers the loop can learn from)."""
        took = Counter(p for s in self.result.shown if s.arm == "treatment" for p in s.took)
        ranked = [p for p, _ in took.most_common()] + [p for p in self.catalog.ids if p not in took]
        halved = self.args.halve or ranked[0]
        doubled = self.args.double or next(p for p in ranked if p != halved)
        sim.scale_appeal(halved, 0.5, from_day)
        sim.scale_appeal(doubled, 2.0, from_day)
        self.result.drift = {"halved": halved, "doubled": doubled, "from_day": str(from_day)}

    async def days(self, sim: Simulator) -> None:
        for day in range(self.args.days):
            day_started = time.monotonic()
            if day == self.args.drift_day:
                self.plant_drift(sim, day)
            batch, _ = sim.step(emit=True)
            self.publish(restamp(batch.records, datetime.now(timezone.utc)))
            self.wait_worker()
            visits = day_visits(sim, batch, day, np.random.default_rng([self.args.seed, 98, day]), self.args.mobile_rate)
            # a client per day: no connection sits idle while the worker catches up
            async with httpx.AsyncClient(base_url=self.stack.api_url, timeout=30,
                                         limits=httpx.Limits(max_connections=CONCURRENCY)) as client:
                for lo in range(0, len(visits), CHUNK):
                    await self.visit_chunk(client, sim, visits[lo:lo + CHUNK], day)
            self.wait_worker()
            took = time.monotonic() - day_started
            self.result.day_wall_s.append(max(took, self.args.day_s))
            print(f"  [{self.mode}] day {day + 1}/{self.args.days}: {len(visits)} visits, "
                  f"{len(self.result.shown):,} decisions so far ({took:.1f} s of {self.args.day_s:g})",
                  file=sys.stderr, flush=True)
            if took < self.args.day_s:  # the day lasts --day-s of wall time: the decay's clock
                await asyncio.sleep(self.args.day_s - took)

    def run(self) -> RunResult:
        started = time.monotonic()
        self.start()
        try:
            start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
            sim = Simulator(self.catalog, self.args.customers, self.args.seed, start)
            for batch in sim.history():
                self.publish(batch.records)
            self.wait_worker()
            if self.args.drift_day == 0:
                self.plant_drift(sim, 0)
            asyncio.run(self.days(sim))
            self.dump_logs()
            with open(self.work / "shown.jsonl", "wb") as out:  # the bench's view of every decision
                out.writelines(orjson.dumps(s.__dict__) + b"\n" for s in self.result.shown)
            with open(self.work / "learned.jsonl", "wb") as out:  # the online run's learned multipliers
                out.writelines(orjson.dumps({"sim_hour": h, "theta": m}) + b"\n" for h, m in self.result.learned)
        finally:
            self.stop()
        self.result.wall_s = time.monotonic() - started
        return self.result

    def dump_logs(self, deadline_s: float = 60.0) -> None:
        """The decision and outcome topics, read back to JSONL for the off-policy evaluation."""
        from kafka import KafkaConsumer

        want = {OFFER_DECISIONS: self.result.decided, OFFER_OUTCOMES: self.result.outcomes_posted}
        for topic, count in want.items():
            path = self.work / (topic.split(".")[-1] + ".jsonl")
            consumer = KafkaConsumer(topic, bootstrap_servers=self.servers.kafka_bootstrap,
                                     auto_offset_reset="earliest", enable_auto_commit=False,
                                     consumer_timeout_ms=2000, client_id="nbo-bench-loop-read")
            lines: list[bytes] = []
            deadline = time.monotonic() + deadline_s
            try:
                while time.monotonic() < deadline:
                    for message in consumer:
                        lines.append(message.value)
                    seen = {orjson.loads(v).get("decision_id") for v in lines} if topic == OFFER_DECISIONS else lines
                    if len(seen) >= count:
                        break
            finally:
                consumer.close()
            path.write_bytes(b"\n".join(lines) + b"\n" if lines else b"")
            self.result.files[topic] = path
        self.result.files["events"] = self.work / "events.jsonl"


def train_model(args: argparse.Namespace, registry_dir: Path) -> str:
    from services.commands.train import train_on_simulation

    settings = load_settings(data_dir=registry_dir.parent).model_copy(
        update={"model": load_settings().model.model_copy(update={"registry_dir": registry_dir})})
    if args.catalog:
        settings = settings.model_copy(update={"catalog": settings.catalog.model_copy(
            update={"path": Path(args.catalog).resolve()})})
    return train_on_simulation(settings, customers=args.train_customers, seed=args.seed + 1000, promote=True)


def ope_check(result: RunResult, registry_dir: Path, catalog_path: str | None) -> dict:
    """The serving model replayed on the run's decision log: IPS against the treatment arm's rate."""
    catalog = load_catalog(catalog_path) if catalog_path else load_catalog()
    settings = load_settings()
    registry = model_registry(settings, catalog, root=registry_dir)
    model = registry.load(registry.current_version(), catalog)

    def records(path: Path) -> list:
        return [decode(line) for line in path.read_bytes().splitlines() if line.strip()]

    decisions = [e.model_dump(mode="json") for e in records(result.files[OFFER_DECISIONS])]
    outcome_events = records(result.files[OFFER_OUTCOMES])
    outcomes = [e.model_dump(mode="json") for e in outcome_events]
    timeline = records(result.files["events"]) + outcome_events
    units = units_from_logs(decisions, outcomes)
    slates = replay_slates(timeline, decisions, model, catalog, load_policy(settings.api.levers_file),
                           feature_params(settings))
    treated = [d for d in decisions if d.get("arm", "treatment") == "treatment" and not d.get("degraded")
               and all(o.get("probability") in (None, 1.0) for o in d["offers"])]  # deterministic ones
    same = sum(tuple(o["product_id"] for o in d["offers"]) == slates[d["decision_id"]].products for d in treated)
    replay = {"treatment_decisions": len(treated), "replayed_identically": same}
    if not units:
        return {"units": 0, "decisions": 0, "decisions_read": len(decisions), "replay": replay,
                "note": "no decision record carries a logged probability: nothing to evaluate"}
    report = evaluate(units, slates)
    out = report.to_json()
    # the check that the logging is right, where both arms' customers have the same history
    # (recommender.ope: on later decisions the treated customers have been sold to already)
    first = evaluate(first_decisions(units), slates)
    treatment = first.by_arm.get("treatment")
    out["first_decisions"] = first.to_json()
    out["ips_covers_treatment_rate"] = bool(treatment is not None and first.ips.covers(treatment.value))
    control = [u for u in units if u.arm == "control"]
    if control:  # the control arm's logged 1/n against the serving ranking's replayed choices
        weight = evaluate(control, slates).mean_weight
        out["control_mean_weight"] = weight.to_json()
        out["control_mean_weight_covers_1"] = bool(weight.covers(1.0))
    out["replay"] = replay
    out["decisions_read"] = len(decisions)
    return out


def paired_gain(static: RunResult, online: RunResult, since_hour: float, resamples: int = 2000,
                expected: bool = False, until_hour: float = float("inf")) -> dict:
    """Online over static acceptance per shown offer on the treatment visits both runs made from
    ``since_hour`` on, before ``until_hour`` (the same customer, channel and time), paired: the answers are common
    random numbers (``answer_offers``' visit key), so where both runs showed the same product the
    answer is the same, and the interval (percentile bootstrap over the visits) only carries the
    offers where they differ. ``expected``: the acceptances the shown offers were worth
    (``Shown.expected``) in place of the outcomes: the same comparison without the noise of the
    answers' draws, which at about 1 % acceptance is most of the interval's width."""
    def by_visit(run: RunResult) -> dict[tuple[int, str, float], Shown]:
        return {(s.customer, s.channel, s.sim_hour): s for s in run.shown
                if s.arm == "treatment" and since_hour <= s.sim_hour < until_hour}
    a, b = by_visit(online), by_visit(static)
    both = sorted(a.keys() & b.keys())
    if not both:
        return {"visits": 0}
    def worth(shown: Shown) -> float:
        return shown.expected if expected else shown.accepted
    acc = np.array([[worth(a[k]), len(a[k].products), worth(b[k]), len(b[k].products)] for k in both], float)
    same = sum(set(a[k].products) == set(b[k].products) for k in both)  # rank changes no answer

    def gain(rows: np.ndarray) -> float:
        sums = rows.sum(axis=0)
        if not sums[2] or not sums[1] or not sums[3]:
            return float("nan")  # no static acceptance in this sample: no ratio
        return float((sums[0] / sums[1]) / (sums[2] / sums[3]) - 1.0)
    rng = np.random.default_rng(0)
    draws = np.array([gain(acc[rng.integers(0, len(acc), len(acc))]) for _ in range(resamples)])
    draws = draws[np.isfinite(draws)]
    low, high = interval(draws)
    total = safe if expected else int
    return {"visits": len(both), "same_slate": same, "online_accepted": total(acc[:, 0].sum()),
            "static_accepted": total(acc[:, 2].sum()), "lift": safe(gain(acc)), "low": safe(low),
            "high": safe(high), "resamples_without_a_ratio": resamples - len(draws)}


def by_channel(static: RunResult, online: RunResult, since_hour: float, resamples: int = 2000) -> dict:
    """Per channel, the treatment arm's offers from ``since_hour`` on in each run: shown,
    accepted and worth (``Shown.expected``), and online over static on the worth per shown offer
    with a percentile bootstrap interval (each run's visits resampled on their own: a channel's
    visits are not the same in both runs once sales differ, bench docstring)."""
    rng = np.random.default_rng(1)
    out = {}
    for channel in VISIT_CHANNELS:
        runs = {}
        for name, run in (("static", static), ("online", online)):
            rows = np.array([[s.expected, len(s.products), s.accepted] for s in run.shown
                             if s.arm == "treatment" and s.channel == channel and s.sim_hour >= since_hour], float)
            runs[name] = rows.reshape(-1, 3)
        a, b = runs["online"], runs["static"]
        entry = {name: {"shown": int(r[:, 1].sum()), "accepted": int(r[:, 2].sum()), "worth": safe(r[:, 0].sum())}
                 for name, r in runs.items()}
        if len(a) and len(b) and b[:, 0].sum() > 0:
            def gain(x: np.ndarray, y: np.ndarray) -> float:
                return float((x[:, 0].sum() / x[:, 1].sum()) / (y[:, 0].sum() / y[:, 1].sum()) - 1.0)
            draws = np.array([gain(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                              for _ in range(resamples)])
            low, high = interval(draws[np.isfinite(draws)])
            entry.update({"worth_lift": safe(gain(a, b)), "low": safe(low), "high": safe(high)})
        out[channel] = entry
    return out


def interval(draws: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of bootstrap draws (NaN, NaN when there are none)."""
    if not len(draws):
        return float("nan"), float("nan")
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def safe(x: float | None) -> float | None:
    """A figure for the JSON: rounded, None where it is not a finite number."""
    return None if x is None or not np.isfinite(x) else round(float(x), 5)


def figures(static: RunResult, online: RunResult, ope: dict, args: argparse.Namespace) -> dict:
    ta, tn = online.rate("treatment")
    ca, cn = online.rate("control")
    lift = relative_lift(ta, tn, ca, cn)
    drift_hour = args.drift_day * 24.0
    treat = [s for s in online.shown if s.arm == "treatment"]
    static_treat = [s for s in static.shown if s.arm == "treatment"]

    def recovery(product: str | None, rose: bool) -> float | None:
        """Hours until online's top-offer share of ``product`` moved half way, against static's."""
        def marks(shown: list[Shown]) -> list[bool]:
            return [(s.products[0] == product) == rose for s in shown]
        return drift_recovery_hours([s.sim_hour for s in treat], marks(treat), drift_hour, window=RECOVERY_WINDOW,
                                    baseline=([s.sim_hour for s in static_treat], marks(static_treat)))

    doubled, halved = online.drift.get("doubled"), online.drift.get("halved")
    doubled_recovery, halved_recovery = recovery(doubled, True), recovery(halved, False)
    learned_hours = [h for h, _ in online.learned]

    def learned(product: str | None, factor: float) -> dict:
        """The product's learned multiplier at the drift and at the end, and the hours it took to
        move half way to its level at the drift x ``factor``."""
        values = [m.get(product, float("nan")) for _, m in online.learned]
        at_drift = next((v for h, v in zip(reversed(learned_hours), reversed(values)) if h < drift_hour), None)
        follow = multiplier_follow_hours(learned_hours, values, drift_hour, factor) if values else None
        return {"product": product, "factor": factor, "at_drift": safe(at_drift) if at_drift is not None else None,
                "at_end": safe(values[-1]) if values else None,
                "follow_hours": safe(follow) if follow is not None else None}

    learning = {"halved": learned(halved, 0.5), "doubled": learned(doubled, 2.0)}
    follows = [learning[w]["follow_hours"] for w in ("halved", "doubled")]
    recovered = None if any(h is None for h in follows) else max(follows)
    sa, sn = static.rate("treatment")
    sa_after, sn_after = static.rate("treatment", drift_hour)
    oa_after, on_after = online.rate("treatment", drift_hour)
    gain = relative_lift(oa_after, on_after, sa_after, sn_after)  # online over static, after the drift
    paired = paired_gain(static, online, drift_hour)
    worth_after = paired_gain(static, online, drift_hour, expected=True)
    worth_before = paired_gain(static, online, -1.0, expected=True, until_hour=drift_hour)

    def share(shown: list[Shown], product: str | None, after: bool) -> float:
        picked = [s for s in shown if (s.sim_hour >= drift_hour) == after]
        return sum(s.products[0] == product for s in picked) / len(picked) if picked else float("nan")

    return {
        "days": args.days, "customers": args.customers,
        "decisions": len(static.shown) + len(online.shown),
        "decisions_per_run": {"static": len(static.shown), "online": len(online.shown)},
        "control_decisions": sum(s.arm == "control" for s in online.shown),
        "control_share": round(sum(s.arm == "control" for s in online.shown) / max(len(online.shown), 1), 4),
        "control_share_setting": args.control_share,
        "treatment_rate": safe(lift.treatment_rate), "control_rate": safe(lift.control_rate),
        "lift": safe(lift.lift), "lift_ci_low": safe(lift.low), "lift_ci_high": safe(lift.high),
        "static_accept_rate": safe(sa / sn if sn else float("nan")),
        "online_accept_rate": safe(ta / tn if tn else float("nan")),
        "static_accept_rate_after_drift": safe(sa_after / sn_after if sn_after else float("nan")),
        "online_accept_rate_after_drift": safe(oa_after / on_after if on_after else float("nan")),
        "online_vs_static_after_drift": {"lift": safe(gain.lift), "low": safe(gain.low), "high": safe(gain.high)},
        "online_vs_static_after_drift_paired": paired,
        # the same, with the acceptances the shown offers were worth (the chances their answers
        # were drawn with) in place of the outcomes: the noise of the draws left out
        "online_vs_static_after_drift_expected": worth_after,
        "online_vs_static_before_drift_expected": worth_before,
        # the same per channel, unpaired (a teller's or an agent's visits differ between the runs)
        "online_vs_static_after_drift_by_channel": by_channel(static, online, drift_hour),
        "drift_recovery_hours": recovered,
        "learned_multiplier": learning,
        "top_share_recovery_hours": {"doubled": safe(doubled_recovery) if doubled_recovery is not None else None,
                                     "halved": safe(halved_recovery) if halved_recovery is not None else None},
        "day_wall_s": {mode: round(float(np.mean(r.day_wall_s)), 2) if r.day_wall_s else None
                       for mode, r in (("static", static), ("online", online))},
        "evidence_half_life_sim_days": args.evidence_half_life,
        # the half-life in the days as they went (a day that ran over --day-s lasted longer)
        "evidence_half_life_effective_sim_days": (round(args.evidence_half_life * args.day_s / float(np.mean(online.day_wall_s)), 2)
                                                  if online.day_wall_s and args.day_s > 0 else None),
        "drift": online.drift,
        **{f"{which}_top_share": {mode: {"before": safe(share([s for s in r.shown if s.arm == "treatment"],
                                                             r.drift.get(which), False)),
                                        "after": safe(share([s for s in r.shown if s.arm == "treatment"],
                                                            r.drift.get(which), True))}
                                 for mode, r in (("static", static), ("online", online))}
           for which in ("doubled", "halved")},
        "ope_static_run": {k: ope[k] for k in ("units", "decisions", "matched", "effective_n", "observed", "ips",
                                               "snips", "dr", "observed_by_arm", "first_decisions",
                                               "ips_covers_treatment_rate", "control_mean_weight",
                                               "control_mean_weight_covers_1", "replay", "decisions_read", "note")
                           if k in ope},
        "wall_s": {"static": round(static.wall_s, 1), "online": round(online.wall_s, 1)},
        "outcomes_posted": static.outcomes_posted + online.outcomes_posted,
        "sales": {"static": static.sales, "online": online.sales},
        "rate_unit": "accepted outcomes / offers shown (per shown offer)",
    }


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f} %"


def print_figures(f: dict) -> None:
    print(f"\nclosed loop: {f['customers']:,} customers x {f['days']} days, {f['decisions']:,} decisions "
          f"({f['decisions_per_run']['static']:,} static + {f['decisions_per_run']['online']:,} online), "
          f"{f['outcomes_posted']:,} outcomes posted")
    print(f"  control decisions (online run)        {f['control_decisions']:,} ({_pct(f['control_share'])})")
    print(f"  acceptance per shown offer, treatment {_pct(f['treatment_rate'])}")
    print(f"  acceptance per shown offer, control   {_pct(f['control_rate'])}")
    lift = "n/a" if f["lift"] is None else (f"{100 * f['lift']:+.1f} %  [{100 * f['lift_ci_low']:+.1f}, "
                                             f"{100 * f['lift_ci_high']:+.1f}] (95 %, delta method on the log scale)")
    print(f"  lift of treatment over control        {lift}")
    print(f"  treatment acceptance, online off / on {_pct(f['static_accept_rate'])} / {_pct(f['online_accept_rate'])}"
          f"  (after the drift: {_pct(f['static_accept_rate_after_drift'])} / "
          f"{_pct(f['online_accept_rate_after_drift'])})")
    gain = f["online_vs_static_after_drift"]
    if gain["lift"] is not None:
        print(f"  online over static after the drift    {100 * gain['lift']:+.1f} %  [{100 * gain['low']:+.1f}, "
              f"{100 * gain['high']:+.1f}] (95 %, independent runs)")
    paired = f["online_vs_static_after_drift_paired"]
    if paired.get("visits"):
        print(f"    paired on the {paired['visits']:,} visits both runs made ({paired['same_slate']:,} with the same "
              f"offers): {paired['online_accepted']} vs {paired['static_accepted']} accepted, "
              + ("no ratio" if None in (paired["lift"], paired["low"], paired["high"]) else
                 f"{100 * paired['lift']:+.1f} % [{100 * paired['low']:+.1f}, {100 * paired['high']:+.1f}]")
              + " (95 %, bootstrap)")
    for when in ("after", "before"):
        worth = f[f"online_vs_static_{when}_drift_expected"]
        if worth.get("visits") and None not in (worth["lift"], worth["low"], worth["high"]):
            print(f"    {when} the drift, the acceptances the shown offers were worth (the answers' chances, no draw "
                  f"noise), paired: {worth['online_accepted']:.1f} vs {worth['static_accepted']:.1f}, "
                  f"{100 * worth['lift']:+.1f} % [{100 * worth['low']:+.1f}, {100 * worth['high']:+.1f}]")
    for channel, c in f["online_vs_static_after_drift_by_channel"].items():
        if c.get("worth_lift") is not None:
            print(f"    after the drift, {channel:11}: worth {c['online']['worth']:.1f} of {c['online']['shown']:,} shown "
                  f"online vs {c['static']['worth']:.1f} of {c['static']['shown']:,} static (accepted {c['online']['accepted']} "
                  f"vs {c['static']['accepted']}), per shown offer {100 * c['worth_lift']:+.1f} % "
                  f"[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}]")
    d = f["drift"]
    print(f"  drift on day {d.get('from_day')}: {d.get('halved')} appeal x0.5, {d.get('doubled')} x2 (offer "
          f"acceptance and daily hazard); top-offer share before -> after, static / online:")
    for which in ("doubled", "halved"):
        top = f[f"{which}_top_share"]
        print(f"    {which:7} {d.get(which):24} {_pct(top['static']['before'])} -> {_pct(top['static']['after'])} / "
              f"{_pct(top['online']['before'])} -> {_pct(top['online']['after'])}")
    for which in ("halved", "doubled"):
        m = f["learned_multiplier"][which]
        follow = m["follow_hours"]
        at_drift, at_end = (("n/a" if x is None else f"{x:.2f}") for x in (m["at_drift"], m["at_end"]))
        print(f"  learned multiplier of {m['product']} (x{m['factor']:g}): {at_drift} at the drift, "
              f"{at_end} at the end; " + ("not half way (log scale) by the end" if follow is None
                                               else f"half way after {follow:.0f} simulated hours"))
    top = f["top_share_recovery_hours"]
    print("  top-offer share against static, half way: "
          + ", ".join(f"{w} " + ("not beyond noise" if top[w] is None else f"{top[w]:.0f} h") for w in ("halved", "doubled")))
    rec = f["drift_recovery_hours"]
    print("  drift recovery (both multipliers half way)  "
          + ("did not follow" if rec is None else f"{rec:.0f} simulated hours"))
    print(f"  a simulated day lasted {f['day_wall_s']['online']} s of wall time (online run); evidence half-life "
          f"{f['evidence_half_life_sim_days']:g} simulated days of --day-s, "
          f"{f['evidence_half_life_effective_sim_days']} of the days as they went")
    ope = f["ope_static_run"]
    if ope.get("units"):
        first = ope["first_decisions"]
        print(f"  OPE on the static run's log, each customer's first decision: serving model replayed, IPS "
              f"{_pct(first['ips']['value'])} [{_pct(first['ips']['low'])}, {_pct(first['ips']['high'])}] vs treatment "
              f"observed {_pct(first['observed_by_arm'].get('treatment', {}).get('value'))}: "
              + ("covered" if ope["ips_covers_treatment_rate"] else "NOT covered"))
        print(f"    on the whole log: IPS {_pct(ope['ips']['value'])} vs treatment observed "
              f"{_pct(ope['observed_by_arm'].get('treatment', {}).get('value'))} (treated customers were sold to "
              f"already); agrees on {ope['matched']:,} of {ope['units']:,} shown offers")
        weight = ope.get("control_mean_weight")
        if weight:
            print(f"    control arm's mean importance weight {weight['value']:.3f} [{weight['low']:.3f}, "
                  f"{weight['high']:.3f}]: " + ("covers 1" if ope["control_mean_weight_covers_1"] else "does NOT cover 1"))
    else:
        print(f"  OPE on the static run's log: {ope.get('note')}")
    replay = ope.get("replay", {})
    print(f"  replay of the serving model on the states at decision time: {replay.get('replayed_identically', 0):,} of "
          f"{replay.get('treatment_decisions', 0):,} treatment decisions identical to the logged ones")


def write_docs(f: dict, command: str) -> None:
    from bench.report import write_section

    ope = f["ope_static_run"]
    if ope.get("units"):
        first = ope["first_decisions"]
        weight = ope.get("control_mean_weight") or {}
        ope_row = (f"| OPE self-check (static run), each customer's first decision: serving model replayed, IPS vs "
                   f"treatment observed | {_pct(first['ips']['value'])} [{_pct(first['ips']['low'])}, "
                   f"{_pct(first['ips']['high'])}] vs {_pct(first['observed_by_arm'].get('treatment', {}).get('value'))}: "
                   f"{'covered' if ope['ips_covers_treatment_rate'] else 'not covered'} |\n"
                   f"| same on the whole log (not comparable: treated customers were sold to already) | "
                   f"{_pct(ope['ips']['value'])} vs {_pct(ope['observed_by_arm'].get('treatment', {}).get('value'))} |\n"
                   f"| control arm's mean importance weight (1 when the logged probabilities are right) | "
                   f"{weight.get('value', float('nan')):.3f} [{weight.get('low', float('nan')):.3f}, "
                   f"{weight.get('high', float('nan')):.3f}] |")
    else:
        ope_row = f"| OPE self-check | {ope.get('note')} |"
    lift = "n/a" if f["lift"] is None else (f"**{100 * f['lift']:+.1f} %** [{100 * f['lift_ci_low']:+.1f}, "
                                             f"{100 * f['lift_ci_high']:+.1f}]")
    g = f["online_vs_static_after_drift"]
    gain = "n/a" if g["lift"] is None else f"{100 * g['lift']:+.1f} % [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]"

    pg = f["online_vs_static_after_drift_paired"]
    paired = ("n/a" if not pg.get("visits") or None in (pg["lift"], pg["low"], pg["high"]) else
              f"{100 * pg['lift']:+.1f} % [{100 * pg['low']:+.1f}, "
              f"{100 * pg['high']:+.1f}] on {pg['visits']:,} visits ({pg['same_slate']:,} with the same offers; "
              f"{pg['online_accepted']} vs {pg['static_accepted']} accepted)")

    def worth(when: str) -> str:
        w = f[f"online_vs_static_{when}_drift_expected"]
        return ("n/a" if not w.get("visits") or None in (w["lift"], w["low"], w["high"]) else
                f"**{100 * w['lift']:+.1f} %** [{100 * w['low']:+.1f}, {100 * w['high']:+.1f}] on {w['visits']:,} "
                f"visits ({w['online_accepted']:.1f} vs {w['static_accepted']:.1f})")

    def channel_worth(channel: str) -> str:
        c = f["online_vs_static_after_drift_by_channel"][channel]
        return ("n/a" if c.get("worth_lift") is None else
                f"{100 * c['worth_lift']:+.1f} % [{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] "
                f"({c['online']['worth']:.1f} of {c['online']['shown']:,} vs {c['static']['worth']:.1f} of "
                f"{c['static']['shown']:,})")

    def shares(which: str) -> str:
        top = f[f"{which}_top_share"]
        return (f"{_pct(top['static']['before'])} -> {_pct(top['static']['after'])} / "
                f"{_pct(top['online']['before'])} -> {_pct(top['online']['after'])}")

    def hours(h: float | None) -> str:
        return "not reached" if h is None else f"**{h:.0f} h**"

    def learned(which: str) -> str:
        m = f["learned_multiplier"][which]
        return (f"{m['product']} (x{m['factor']:g}), online run | {num(m['at_drift'])} at the drift -> "
                f"{num(m['at_end'])} at the end; half way after {hours(m['follow_hours'])} |")

    def num(x: float | None) -> str:
        return "n/a" if x is None else f"{x:.2f}"

    section = f"""{SECTION}

Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.
Command: `{command}` ({f['customers']:,} simulated customers x {f['days']} days, run twice on fresh embedded servers: online learning off, then on (the defaults, `NBO_LOOP__STARTING_EVIDENCE` 5, plus Thompson sampling on mobile; the evidence's half-life {f['evidence_half_life_sim_days']:g} simulated days); real API, worker and broker; control share {f['control_share']:.1%} of decisions (`NBO_LOOP__CONTROL_SHARE` {f['control_share_setting']:g}: the bench's, the product's default is 0.03)).

| what | figure |
|---|---|
| decisions (static + online) | {f['decisions']:,} ({f['decisions_per_run']['static']:,} + {f['decisions_per_run']['online']:,}) |
| control decisions (online run) | {f['control_decisions']:,} |
| acceptance per shown offer, treatment / control (online run) | {_pct(f['treatment_rate'])} / {_pct(f['control_rate'])} |
| lift (p_t - p_c) / p_c, 95 % interval (delta method, log scale) | {lift} |
| treatment acceptance, online learning off / on | {_pct(f['static_accept_rate'])} / {_pct(f['online_accept_rate'])} |
| same, after the drift | {_pct(f['static_accept_rate_after_drift'])} / {_pct(f['online_accept_rate_after_drift'])} |
| online over static after the drift, 95 % interval: independent runs; paired on the same visits (common random numbers, bootstrap) | {gain}; {paired} |
| same, paired, on the acceptances the shown offers were worth (the chances their answers were drawn with: no draw noise), after / before the drift | {worth('after')}; {worth('before')} |
| after the drift, per channel, online over static on the worth per shown offer (unpaired, bootstrap): teller; call centre; mobile | {channel_worth('teller')}; {channel_worth('call_centre')}; {channel_worth('mobile')} |
| drift (day {f['drift'].get('from_day')}): offers of {f['drift'].get('halved')} accepted x0.5, of {f['drift'].get('doubled')} x2 (and their daily hazards); top-offer share before -> after, off / on | {f['drift'].get('halved')}: {shares('halved')}; {f['drift'].get('doubled')}: {shares('doubled')} |
| learned multiplier (theta) of {learned('halved')}
| learned multiplier (theta) of {learned('doubled')}
| drift recovery: simulated hours until both multipliers are half way (log scale) to their new level | {hours(f['drift_recovery_hours'])} |
| online's top-offer share against static's, half way to its new level: {f['drift'].get('halved')} / {f['drift'].get('doubled')} | {hours(f['top_share_recovery_hours']['halved'])} / {hours(f['top_share_recovery_hours']['doubled'])} |
{ope_row}
| wall time per run (static / online); a simulated day | {f['wall_s']['static']:.0f} s / {f['wall_s']['online']:.0f} s; {f['day_wall_s']['online']} s |

Acceptance is per shown offer: accepted outcomes over offers shown, each offer answered from the simulator's true propensity on its channel (times the drifted product's appeal). The days are compressed into wall-clock seconds (the API decides at the wall clock): each simulated day lasts `--day-s` of wall time, and the online evidence's half-life is set to {f['evidence_half_life_sim_days']:g} simulated days of it (`NBO_LOOP__EVIDENCE_HALF_LIFE_DAYS`, the product's default is 30 days; {f['evidence_half_life_effective_sim_days']} of the days as they went, which ran over); a decline's cool-down outlasts the run. Figures on a shared machine; rerun on a quiet one for timings.
"""
    write_section(SECTION, section)


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4000, help="simulated customers (default 4000)")
    parser.add_argument("--days", type=int, default=12, help="simulated days per run (default 12)")
    parser.add_argument("--drift-day", type=int, default=None, help="day the drift starts (default days // 2)")
    parser.add_argument("--halve", default=None, help="product whose appeal halves (default: the one treatment "
                                                      "customers accepted most before the drift)")
    parser.add_argument("--double", default=None, help="product whose appeal doubles (default: the one they "
                                                       "accepted second most)")
    parser.add_argument("--day-s", type=float, default=12.0,
                        help="wall seconds a simulated day lasts (the bench waits out a day done sooner; default 12)")
    parser.add_argument("--evidence-half-life", type=float, default=2.0,
                        help="half-life of the online evidence in simulated days (default 2; set as "
                             "NBO_LOOP__EVIDENCE_HALF_LIFE_DAYS in the run's compressed time)")
    parser.add_argument("--explore", nargs="*", default=["mobile"], choices=("teller", "call_centre", "mobile"),
                        help="channels that explore (Thompson sampling) in the online run (default: mobile; "
                             "none: --explore with no channel, the product's default)")
    parser.add_argument("--mobile-rate", type=float, default=0.3, help="daily chance an app user opens the app")
    parser.add_argument("--control-share", type=float, default=0.25,
                        help="NBO_LOOP__CONTROL_SHARE for the run (default 0.25, the product's is 0.03: a short run "
                             "needs ~40 control acceptances for an interval on the lift that excludes 0)")
    parser.add_argument("--train-customers", type=int, default=3000, help="customers of the training simulation")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--catalog", default=None, help="product catalog CSV (default: the packaged one)")
    parser.add_argument("--only", choices=("static", "online"), default=None, help="run one mode only")
    parser.add_argument("--keep", type=Path, default=None,
                        help="keep the runs' logs (events, decisions, outcomes JSONL; server logs) under this directory")
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/BENCHMARKS.md")
    parser.add_argument("--json", action="store_true", help="end stdout with the figures as one JSON object")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    args = parser().parse_args(argv)
    if args.drift_day is None:
        args.drift_day = args.days // 2
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        parser().error(f"--keep {args.keep}: the directory is not empty")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="nbo-bench-loop-") as tmp:
        work = Path(tmp) if args.keep is None else args.keep
        registry_dir = work / "models"
        started = time.monotonic()
        version = train_model(args, registry_dir)
        print(f"model {version} trained on {args.train_customers:,} simulated customers "
              f"({time.monotonic() - started:.0f} s)", file=sys.stderr)
        runs = {}
        for mode in ("static", "online"):
            if args.only in (None, mode):
                runs[mode] = Loop(args, mode, registry_dir, work).run()
                # the same drift in both runs: the products the first run chose
                args.halve = args.halve or runs[mode].drift.get("halved")
                args.double = args.double or runs[mode].drift.get("doubled")
        static = runs.get("static") or runs["online"]
        online = runs.get("online") or runs["static"]
        # the self-check replays the model alone: it applies to the static run's log only
        ope = ope_check(static, registry_dir, args.catalog) if "static" in runs else {
            "note": "not run: the off-policy self-check replays the model alone, which is the static run's policy"}
    result = figures(static, online, ope, args)
    print_figures(result)
    if args.write_docs:
        shown = list(argv if argv is not None else sys.argv[1:])
        if "--keep" in shown:  # a local directory: not part of the command to rerun
            at = shown.index("--keep")
            del shown[at:at + 2]
        write_docs(result, "python bench/loop.py " + " ".join(shown))
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())

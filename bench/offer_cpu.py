"""In-process CPU of one offer request through the real app (``create_app`` on the fakes), per
channel: the ASGI app called directly (no HTTP client, no server), so the figure is the app's own
work: middleware, routing, the state read from the in-memory reader, decisioning, the response
and the decision log's buffering. Run it in two trees to compare them on the same machine in the
same minute; it runs unchanged in a tree before the closed loop (no ``learning`` part there).

    .venv/bin/python bench/offer_cpu.py [--requests 3000] [--customers 200] [--loop default|off]
                                        [--evidence] [--json]

``--loop off``: no control arm, no exploration (ranking as before the loop); ``--loop default``:
the shipped ``NBO_LOOP__*`` defaults (3 % control, no channel explores); ``--loop explore``: the
same with Thompson sampling on mobile (``NBO_LOOP__EXPLORE_CHANNELS=["mobile"]``). ``--evidence``
fills the learn hash with evidence for every product and every segment (what a running stream
writes). The model is the popularity prior unless ``--trained`` (trains on simulated customers
first, as bench/api.py does; slower to start).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, os.getcwd())  # the tree it is run from

from adapters import fakes  # noqa: E402
from adapters.ports import SourcedEvent  # noqa: E402
from bootstrap import ApiParts, load_settings  # noqa: E402
from domain.catalog import load_catalog  # noqa: E402
from domain.features import FeatureParams  # noqa: E402
from recommender.model import PriorModel  # noqa: E402
from services.api.app import create_app  # noqa: E402
from simulator.bank import simulate_events  # noqa: E402

CHANNELS = ("teller", "call_centre", "mobile")
KEYS = {"teller": b"dev-teller", "call_centre": b"dev-agent", "mobile": b"dev-mobile"}


def request(channel: str, customer_id: str) -> tuple[dict, bytes]:
    if channel == "teller":
        body = json.dumps({"customer_id": customer_id, "transaction": {"kind": "deposit",
                                                                      "amount_minor": 100_000}}).encode()
        path, method = "/v1/teller/offers", "POST"
    elif channel == "call_centre":
        body, path, method = b"", f"/v1/call-centre/customers/{customer_id}/offers", "GET"
    else:
        body, path, method = b"", f"/v1/mobile/customers/{customer_id}/slots", "GET"
    headers = [(b"host", b"bench"), (b"x-api-key", KEYS[channel])]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    return scope, body


async def call(app, scope: dict, body: bytes) -> int:
    status = 0
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(args: argparse.Namespace) -> dict:
    catalog = load_catalog()
    start = datetime.now(timezone.utc) - timedelta(days=60)
    events = simulate_events(catalog, customers=args.customers, days=60, seed=3, start=start)
    store = fakes.MemoryStateStore()
    store.apply_batch([SourcedEvent(e, "events", 0, i) for i, e in enumerate(events)], FeatureParams(), time.time())
    customers = sorted(set(store.customer_ids()))
    loop = {"control_share": 0.0, "explore_channels": []} if args.loop == "off" else {
        "control_share": 0.03, "explore_channels": []} if args.loop == "default" else {
        "control_share": 0.03, "explore_channels": ["mobile"]}
    data_dir = tempfile.mkdtemp(prefix="nbo-offer-cpu-")
    settings = load_settings(data_dir=data_dir, api={"allow_dev_keys": True, "rate_per_s": 1e9, "rate_burst": 10**9},
                             loop=loop)
    if args.trained:
        from bootstrap import model_registry
        from services.commands.train import train_on_simulation
        version = train_on_simulation(settings, customers=3000, seed=0, days=30)
        model = model_registry(settings, catalog).load(version)
    else:
        model = PriorModel(catalog)
    kwargs = {}
    if hasattr(fakes, "MemoryLearningSource"):
        learning = fakes.MemoryLearningSource()
        if args.evidence:
            import domain.learning

            # the stored form of the tree: [accepts, others, as_of_s, expected] with the field of all
            # products, or [accepts, others, as_of_s] in a tree before the multiplicative calibration
            expected = hasattr(domain.learning, "ALL_PRODUCTS")

            def value(accepts: float, others: float, expect: float) -> list[float]:
                return [accepts, others, time.time()] + ([expect] if expected else [])

            for p in catalog.products:
                learning.write(p.product_id, value(30.0, 400.0, 25.0))
                for segment in "ABCDEFG":
                    learning.write(f"{p.product_id}|{segment}", value(8.0, 60.0, 6.0))
            if expected:
                learning.write("*", value(30.0 * len(catalog.products), 400.0 * len(catalog.products),
                                          25.0 * len(catalog.products)))
        if args.evidence_json:  # a running stream's learn hash, dumped as JSON (field -> stored value)
            stored = json.loads(Path(args.evidence_json).read_text())
            for name, value in stored.items():
                learning.write(name, value[:2] + [time.time()] + value[3:])  # as of now
        kwargs["learning"] = learning
    publisher = fakes.MemoryPublisher(buffer_size=10**9)
    parts = ApiParts(settings=settings, catalog=catalog, store=store.reader(), models=fakes.FixedModels(model),
                     publisher=publisher, policies=fakes.MemoryPolicySource({}), params=FeatureParams(),
                     decisions=fakes.MemoryDecisionCache(buffer_size=10**9), **kwargs)
    app = create_app(settings, parts)
    results = {}
    async with app.router.lifespan_context(app):
        for channel in CHANNELS:
            requests = [request(channel, customers[i % len(customers)]) for i in range(args.requests)]
            for scope, body in requests[:300]:  # warm the memos
                assert await call(app, scope, body) == 200
            rounds = []
            for _ in range(5):
                began = time.process_time()
                for scope, body in requests:
                    await call(app, scope, body)
                rounds.append((time.process_time() - began) / len(requests) * 1e6)
            results[channel] = {"us_per_request_median": round(statistics.median(rounds), 1),
                                "us_per_request_min": round(min(rounds), 1)}
            publisher._buffer.clear()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--loop", choices=("default", "off", "explore"), default="default",
                        help="default: the shipped defaults (3 %% control, no channel explores); off: no control arm; "
                             "explore: as default with Thompson sampling on mobile")
    parser.add_argument("--evidence", action="store_true")
    parser.add_argument("--evidence-json", default=None,
                        help="a learn hash dumped as JSON ({field: stored value}), e.g. from a bench/loop.py run")
    parser.add_argument("--trained", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(measure(args))
    if args.json:
        print(json.dumps(results))
    else:
        for channel, figures in results.items():
            print(f"{channel:12s} {figures['us_per_request_median']:8.1f} us/request (min of 5 rounds "
                  f"{figures['us_per_request_min']:.1f})")


if __name__ == "__main__":
    main()

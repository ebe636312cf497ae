"""``nbo demo``: the whole loop on one machine, on simulated bank traffic.

1. start the embedded broker and Redis (or use the configured ones),
2. train a model on a simulated history and promote it (unless one is already current),
3. start a stream worker and the offer API as child processes,
4. publish recent simulated traffic and wait until the worker has applied all of it,
5. print offers with reasons for a few customers on the teller, call-centre and mobile channels,
6. print the URLs and serve until Ctrl-C (``--once``: stop and exit 0).

If any child process dies, everything stops and the demo exits non-zero with its log tail.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable, TypeVar

import httpx

from services.runtime import Servers, start_servers
from bootstrap.settings import Settings, load_settings
from services.stack import DEV_KEYS, Stack

T = TypeVar("T")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="print the offers, stop everything and exit 0")
    parser.add_argument("--customers", type=int, default=300, help="customers in the live traffic (default 300)")
    parser.add_argument("--days", type=int, default=30, help="days of live traffic, ending now (default 30)")
    parser.add_argument("--train-customers", type=int, default=5000,
                        help="customers in the simulated history the first model is trained on")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=2, help="customers to show per channel")


class Progress:
    """Numbered steps on stderr-friendly stdout, with the time each took."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.number = 0

    def step(self, title: str, action: Callable[[], T]) -> T:
        self.number += 1
        print(f"[{self.number}/{self.total}] {title} ...", end="", flush=True)
        started = time.monotonic()
        result = action()
        print(f" done ({time.monotonic() - started:.1f} s)", flush=True)
        return result


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    progress = Progress(6)
    servers = progress.step("starting Kafka-protocol broker and Redis", lambda: start_servers(settings))
    stack = Stack(servers, settings.data_dir / "logs", api_port=_api_port(settings))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    # Ctrl-C stops everything even when the demo was started where SIGINT is ignored (a shell's
    # background job, some process supervisors).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        print(f"      broker {servers.kafka_bootstrap}   redis {servers.redis_url}")
        version = progress.step("training the first model on a simulated history",
                                lambda: _ensure_model(settings, args))
        print(f"      serving model {version}")
        progress.step("starting the stream worker and the offer API", lambda: _start_children(stack))
        events = progress.step("publishing simulated bank traffic", lambda: _publish_traffic(servers, args))
        progress.step(f"waiting until the worker has applied {len(events)} events",
                      lambda: _wait_applied(settings, servers, events, stack))
        customers = _interesting_customers(events, args.show * 3)
        progress.step("asking for offers", lambda: None)
        _print_offers(stack, customers, args.show)
        _print_urls(stack, customers[0])
        if args.once:
            return 0
        print("Serving until Ctrl-C.", flush=True)
        return _supervise(stack, servers, stop)
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()
        servers.stop()


def _api_port(settings: Settings) -> int:
    from services.runtime import free_port
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", settings.api.port))
            return settings.api.port
        except OSError:
            return free_port()


def _ensure_model(settings: Settings, args: argparse.Namespace) -> str:
    from bootstrap import model_registry
    from services.commands.train import train_on_simulation

    registry = model_registry(settings)
    current = registry.current_version()
    if current is not None:
        return current
    return train_on_simulation(settings, customers=args.train_customers, seed=args.seed, promote=True)


def _start_children(stack: Stack) -> None:
    stack.start_worker()
    stack.start_api()


def _publish_traffic(servers: Servers, args: argparse.Namespace) -> list:
    from domain.catalog import load_catalog
    from simulator.bank import simulate_events
    from services.commands.simulate import publish

    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=args.days)
    events = list(simulate_events(load_catalog(), customers=args.customers, days=args.days,
                                  seed=args.seed + 1, start=start))
    publish(events, servers.kafka_bootstrap)
    return events


def _wait_applied(settings: Settings, servers: Servers, events: list, stack: Stack, deadline_s: float = 180) -> None:
    """Counts produced events per customer and waits until each customer's state has applied them."""
    from bootstrap import state_store

    expected = Counter(e.customer_id for e in events if e.type != "offer_decision")
    store = state_store(settings.with_servers(servers.kafka_bootstrap, servers.redis_url))
    deadline = time.monotonic() + deadline_s
    pending = dict(expected)
    while pending:
        for child in stack.children():
            if not child.alive():
                raise SystemExit(f"{child.name} stopped:\n{child.tail(30)}")
        for customer_id in list(pending)[:500]:
            state = store.get(customer_id)
            if state is not None and state.events_applied >= pending[customer_id]:
                del pending[customer_id]
        if time.monotonic() > deadline:
            raise SystemExit(f"{len(pending)} customers still have unapplied events after {deadline_s:.0f} s; "
                             f"worker log:\n{stack.worker.tail(30) if stack.worker else ''}")
        if pending:
            print(".", end="", flush=True)
            time.sleep(0.5)


def _interesting_customers(events: list, count: int) -> list[str]:
    """Customers with the most varied recent behaviour make the best examples."""
    kinds: dict[str, set[str]] = {}
    for event in events:
        kinds.setdefault(event.customer_id, set()).add(event.type)
    ranked = sorted(kinds, key=lambda c: (-len(kinds[c]), c))
    return ranked[:count]


def _print_offers(stack: Stack, customers: list[str], per_channel: int) -> None:
    client = httpx.Client(base_url=stack.api_url, timeout=10)
    for index, channel in enumerate(("teller", "call_centre", "mobile")):
        print(f"\n== {channel} ==")
        for customer_id in customers[index * per_channel:(index + 1) * per_channel]:
            response = client.get(f"/v1/customers/{customer_id}/offers", params={"channel": channel},
                                  headers={"X-API-Key": DEV_KEYS[channel]})
            if response.status_code != 200:
                raise SystemExit(f"offer API answered {response.status_code}: {response.text}")
            body = response.json()
            flag = "  (degraded)" if body.get("degraded") else ""
            print(f"{customer_id}  model {body['model_version']}{flag}")
            if body.get("service_action"):
                print(f"   ! {body['service_action']['en']}")
            for offer in body["offers"]:
                print(f"   {offer['rank']}. {offer['name']} / {offer['name_zh']}  score {offer['score']:.3f}")
                print(f"      {offer['reason']['en']}")
                print(f"      {offer['reason']['zh']}")


def _print_urls(stack: Stack, example_customer: str) -> None:
    print(f"\nOffer API      {stack.api_url}/docs")
    print(f"Agent screen   {stack.api_url}/agent?customer={example_customer}#key={DEV_KEYS['call_centre']}")
    print(f"Metrics        {stack.api_url}/metrics")
    print("Dev API keys   " + ", ".join(f"{c}={k}" for c, k in DEV_KEYS.items()))


def _supervise(stack: Stack, servers: Servers, stop: threading.Event) -> int:
    while not stop.wait(0.5):
        for child in [*stack.children(), *servers.processes]:
            if not child.alive():
                print(f"{child.name} stopped unexpectedly; stopping everything. Last output:\n{child.tail(30)}",
                      file=sys.stderr)
                return 1
    return 0

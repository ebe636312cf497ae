"""``nbo simulate --to-kafka`` feeds the running system: every simulated event reaches the
customer's state through the broker and the stream worker."""

from __future__ import annotations

import json
import time
from collections import defaultdict

import redis

from services.cli import main
from adapters.keys import seen_key


def test_simulated_traffic_published_to_kafka_is_applied_by_the_worker(stack, tmp_path, capsys):
    out = tmp_path / "events.jsonl"
    code = main(["simulate", "--customers", "25", "--days", "7", "--seed", "9173", "--start", "now",
                 "--out", str(out), "--to-kafka", "--bootstrap", stack.servers.kafka_bootstrap, "--quiet"])
    assert code == 0, capsys.readouterr().err

    ids_by_customer: dict[str, set[str]] = defaultdict(set)
    for line in out.read_text().splitlines():
        event = json.loads(line)
        ids_by_customer[event["customer_id"]].add(event["event_id"])
    assert len(ids_by_customer) == 25

    # Each customer's applied-event ids (the worker's dedupe set) must come to hold every one published.
    client = redis.Redis.from_url(stack.servers.redis_url, decode_responses=True)
    pending = dict(ids_by_customer)
    deadline = time.monotonic() + 90
    while pending and time.monotonic() < deadline:
        for customer_id in list(pending):
            if not pending[customer_id] - set(client.zrange(seen_key("nbo", customer_id), 0, -1)):
                del pending[customer_id]
        time.sleep(0.2)
    missing = sum(len(ids - set(client.zrange(seen_key("nbo", c), 0, -1))) for c, ids in pending.items())
    assert not pending, f"{missing} simulated events of {len(pending)} customers never reached their state"

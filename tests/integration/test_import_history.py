"""``nbo import`` end to end: a simulated bank's core-banking extract imported through the
example mapping gives back the simulated events, trains a model with ``nbo train --history``,
and with ``--to-redis`` leaves in Valkey exactly the states the in-process fold of the same
events gives (the oracle); a rerun changes nothing."""

from __future__ import annotations

import json
from itertools import groupby
from pathlib import Path

import orjson
import pytest

from adapters.history_store import iter_history
from adapters.model_registry import ModelRegistry
from adapters.redis_store import RedisStateStore
from domain.catalog import load_catalog
from domain.features import FeatureParams, apply_all
from domain.state import CustomerState
from schemas.codec import decode
from services.cli import main
from simulator.bank import write_jsonl
from simulator.core_banking import write_extract

pytestmark = pytest.mark.integration
MAPPING = Path(__file__).resolve().parents[2] / "examples" / "core_banking" / "mapping.yaml"


@pytest.fixture(scope="module")
def extract(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    root = tmp_path_factory.mktemp("bank")
    events = root / "events.jsonl"
    write_jsonl(events, load_catalog(), customers=800, days=30, seed=5, progress=False)
    counts = write_extract(events, root / "extract")
    return events, [root / "extract" / name for name in counts]


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _without_ids(line: bytes) -> bytes:
    data = orjson.loads(line)
    data.pop("event_id")
    data.pop("source")
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def test_import_then_train_from_the_store(extract, tmp_path, capsys) -> None:
    events, files = extract
    store = tmp_path / "history"
    assert main(["import", "--mapping", str(MAPPING), *map(str, files), "--store", str(store), "--quiet",
                 "--json"]) == 0
    summary = _summary(capsys)
    simulated = events.read_bytes().splitlines()
    assert (summary["imported"], summary["rejected"]) == (len(simulated), 0)
    # The extract holds the simulated facts: importing it gives them back (ids are the rows' own).
    assert sorted(map(_without_ids, iter_history(store))) == sorted(map(_without_ids, simulated))

    registry = tmp_path / "models"
    assert main(["train", "--history", str(store), "--registry", str(registry), "--json"]) == 0
    trained = _summary(capsys)
    assert trained["customers"] == 800 and trained["purchases"] > 0
    model = ModelRegistry(registry, load_catalog()).load(trained["version"])
    assert model.product_ids == tuple(p.product_id for p in load_catalog())


@pytest.mark.parametrize("redis_kind", ["servers", "cluster_servers"])
def test_to_redis_leaves_the_states_of_the_fold(extract, redis_kind, request, key_prefix, tmp_path, capsys,
                                                monkeypatch) -> None:
    _, files = extract
    servers = request.getfixturevalue(redis_kind)
    monkeypatch.setenv("NBO_REDIS__URL", servers.redis_url)
    monkeypatch.setenv("NBO_REDIS__KEY_PREFIX", key_prefix)
    store = tmp_path / "history"
    argv = ["import", "--mapping", str(MAPPING), *map(str, files), "--store", str(store), "--to-redis", "--quiet",
            "--json"]
    assert main(argv) == 0
    first = _summary(capsys)
    assert first["to_redis"] == first["imported"] > 0

    oracle = {cid: apply_all(CustomerState(cid), [decode(line) for line in lines], FeatureParams())
              for cid, lines in groupby(iter_history(store), key=lambda line: orjson.loads(line)["customer_id"])}
    redis = RedisStateStore(servers.redis_url, key_prefix)
    try:
        assert set(redis.customer_ids()) == set(oracle)
        assert {cid: redis.get(cid) for cid in oracle} == oracle

        assert main(argv) == 0  # the same files again: nothing imported, no state changed
        again = _summary(capsys)
        assert (again["imported"], again["duplicates"], again["to_redis"]) == (0, first["imported"], 0)
        assert {cid: redis.get(cid) for cid in oracle} == oracle
    finally:
        redis.close()

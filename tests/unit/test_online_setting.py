"""``NBO_LOOP__ONLINE=false``: the offer API is built without the online evidence, so it ranks
by the model's propensities alone (the static arm ``bench/loop.py`` compares the loop with)."""

from __future__ import annotations

from pathlib import Path

from adapters.learning_reader import NoEvidence, RedisLearningReader
from bootstrap import build_api, load_settings


def settings(tmp_path: Path, **loop: object):
    return load_settings(data_dir=tmp_path, kafka={"bootstrap": "broker:9092"},
                         redis={"url": "redis://redis.bank:6379/0", "mode": "single"}, loop=loop)


def test_the_api_reads_the_online_evidence_by_default(tmp_path: Path) -> None:
    assert isinstance(build_api(settings(tmp_path)).learning, RedisLearningReader)


def test_online_false_builds_the_api_without_evidence(tmp_path: Path) -> None:
    assert isinstance(build_api(settings(tmp_path, online=False)).learning, NoEvidence)

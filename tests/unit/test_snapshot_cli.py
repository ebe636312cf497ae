"""nbo snapshot, then nbo train from the snapshot and the newer events on two worker processes:
the same training data as training on the whole log in one process."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from domain.catalog import load_catalog
from services.cli import main
from simulator.bank import DEFAULT_START, truth_path_for, write_jsonl

DAY_S = 86_400.0


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_training_from_a_snapshot_sees_what_the_whole_log_gives(tmp_path: Path, capsys) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, load_catalog(), customers=400, days=30, seed=5, progress=False)
    at = DEFAULT_START.timestamp() + DAY_S  # before the first training window (cutoff - 2 x 14 days)
    snap = tmp_path / "snap"
    assert main(["snapshot", "--events", str(events), "--at", datetime.fromtimestamp(at, timezone.utc).isoformat(),
                 "--out", str(snap), "--workers", "2", "--shards", "3", "--json"]) == 0
    manifest = _last_json(capsys.readouterr().out)
    assert manifest["customers"] == 400 and manifest["shards"] == 3
    assert sorted(p.name for p in snap.iterdir()) == ["manifest.json", "part-00000.jsonl", "part-00001.jsonl",
                                                      "part-00002.jsonl"]
    newer = tmp_path / "newer.jsonl"
    with open(events, "rb") as src, open(newer, "wb") as out:
        for line in src:
            if datetime.fromisoformat(json.loads(line)["occurred_at"].replace("Z", "+00:00")).timestamp() >= at:
                out.write(line)

    assert main(["train", "--events", str(events), "--registry", str(tmp_path / "full"), "--json"]) == 0
    full = _last_json(capsys.readouterr().out)
    assert main(["train", "--snapshot", str(snap), "--events", str(newer), "--truth", str(truth_path_for(events)),
                 "--workers", "2", "--no-validate", "--registry", str(tmp_path / "tail"), "--promote", "--force", "--json"]) == 0
    tail = _last_json(capsys.readouterr().out)
    for key in ("customers", "rows", "purchases", "tokens", "cutoff", "events"):
        assert tail[key] == full[key], key
    assert tail["promoted"] and tail["workers"] == 2 and tail["snapshot"] == str(snap)
    assert manifest["events_folded"] < full["events"]


def test_a_snapshot_newer_than_the_training_windows_is_refused_with_what_to_do(tmp_path: Path, capsys) -> None:
    events = tmp_path / "events.jsonl"
    write_jsonl(events, load_catalog(), customers=50, days=30, seed=5, progress=False)
    snap = tmp_path / "snap"
    assert main(["snapshot", "--events", str(events), "--at", "2026-01-20T00:00:00Z", "--out", str(snap)]) == 0
    capsys.readouterr()
    assert main(["train", "--snapshot", str(snap), "--events", str(events), "--registry", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "snapshot at 2026-01-20T00:00:00Z" in err and "older snapshot" in err
    assert main(["snapshot", "--events", str(tmp_path / "missing.jsonl"), "--out", str(snap)]) == 2
    assert "file not found" in capsys.readouterr().err

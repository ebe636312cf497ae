"""The API's model and policy sources over the shared control values (``NBO_API__CONTROL_SOURCE=
redis``), on the fakes: the registry follows the version Redis holds, else its own CURRENT file;
a promotion that Redis does not hear is an error that says what to do; ``nbo levers push``
refuses a bad file with the levers file's message, and says when the replicas do not follow Redis."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.fakes import MemoryControl
from adapters.model_registry import ModelRegistry, RegistryError
from adapters.shared_control import MODEL, POLICY, ControlledPolicy, ControlledRegistry
from adapters.policy_file import PolicyHolder
from bank_catalog import trained_for
from domain.catalog import load_catalog
from services.cli import main as nbo

CATALOG = load_catalog()


@pytest.fixture
def files(tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models", CATALOG)
    model = trained_for(CATALOG)
    for version in ("v1", "v2"):
        registry.save(model, dict(model.metadata), version=version)
    return registry


def test_the_version_in_redis_wins_and_the_current_file_serves_when_redis_has_none_or_is_down(files) -> None:
    control = MemoryControl()
    registry = ControlledRegistry(files, control)
    files.promote("v1")
    assert registry.current_version() == "v1"  # nothing in Redis yet
    control.put(MODEL, "v2")
    assert registry.current_version() == "v2"
    control.up = False
    assert registry.current_version() == "v1"


def test_a_promotion_redis_does_not_hear_says_what_to_do(files) -> None:
    control = MemoryControl()
    control.up = False
    with pytest.raises(RegistryError, match="v2 is current in the registry's files, but Redis could not be told.*"
                                            "run nbo promote again"):
        ControlledRegistry(files, control).promote("v2")


def test_the_levers_file_serves_until_a_policy_is_pushed_and_again_once_it_is_removed(tmp_path: Path) -> None:
    levers = tmp_path / "levers.json"
    levers.write_text(json.dumps({"levers": {"fund": 1.2}}))
    control = MemoryControl()
    source = ControlledPolicy(control, PolicyHolder(levers))
    assert source.refresh() is False and source.current.levers["fund"] == 1.2
    control.put(POLICY, json.dumps({"levers": {"fund": 3.0}}))
    assert source.refresh() is True and source.current.levers["fund"] == 3.0
    control.put(POLICY, "{not json")
    assert source.refresh() is False and source.refused and source.current.levers["fund"] == 3.0
    assert "the policy pushed to Redis" in (source.refusal or "")
    del control.values[POLICY]
    assert source.refresh() is True and source.current.levers["fund"] == 1.2


def test_nbo_levers_push_refuses_a_bad_file_with_the_levers_files_message(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "levers.json"
    bad.write_text(json.dumps({"levers": {"fund": -1}}))
    assert nbo(["levers", "push", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nbo levers: refused: {bad}: levers.fund: expected a number")


def test_nbo_levers_push_says_when_the_replicas_read_their_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("NBO_API__CONTROL_SOURCE", raising=False)
    good = tmp_path / "levers.json"
    good.write_text(json.dumps({"levers": {"fund": 2.0}}))
    assert nbo(["levers", "push", str(good)]) == 2
    assert "NBO_API__CONTROL_SOURCE is files" in capsys.readouterr().err

"""``nbo evaluate --ope`` and ``nbo promote --require-ope-not-worse`` refuse bad input with a
message that says what to fix (the estimates themselves: tests/unit/test_ope.py, and on a real
logged run: tests/e2e/test_loop_ope.py)."""

from __future__ import annotations

from services.cli import main


def test_ope_needs_the_decision_and_outcome_logs(capsys):
    assert main(["evaluate", "--ope"]) == 2
    assert "--decisions and --outcomes" in capsys.readouterr().err


def test_a_missing_log_is_named(tmp_path, capsys):
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text("")
    assert main(["evaluate", "--ope", "--decisions", str(tmp_path / "nope.jsonl"), "--outcomes", str(outcomes)]) == 2
    assert "nope.jsonl: file not found" in capsys.readouterr().err


def test_a_bad_record_is_named_by_file_and_line(tmp_path, capsys):
    decisions = tmp_path / "decisions.jsonl"
    decisions.write_text('{"type": "offer_decision"}\n')
    outcomes = tmp_path / "outcomes.jsonl"
    outcomes.write_text("")
    assert main(["evaluate", "--ope", "--decisions", str(decisions), "--outcomes", str(outcomes)]) == 2
    assert "decisions.jsonl line 1" in capsys.readouterr().err


def test_the_promotion_check_needs_the_logs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NBO_MODEL__REGISTRY_DIR", str(tmp_path / "models"))
    assert main(["promote", "20260101T000000Z-000000", "--require-ope-not-worse"]) == 2
    assert "needs --decisions and --outcomes" in capsys.readouterr().err

"""The ``nbo`` command line: every option of every sub-command says what it does and, when it
takes a value, what happens without it; the spellings are the same across sub-commands."""

from __future__ import annotations

import argparse

import pytest

from services.cli import COMMANDS, command_parser

#: Options allowed without help text: none.
KNOWN_WITHOUT_HELP: set[tuple[str, str]] = set()


def _options(name: str) -> list[tuple[argparse.ArgumentParser, argparse.Action]]:
    parser = command_parser(name)
    return [(parser, action) for action in parser._actions
            if not isinstance(action, argparse._HelpAction) and action.help != argparse.SUPPRESS]


def _shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text ``nbo <command> --help`` prints for ``action``."""
    return parser._get_formatter()._expand_help(action)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help(name):
    missing = [action.option_strings[0] if action.option_strings else action.dest
               for _, action in _options(name)
               if not (action.help or "").strip()
               and (name, action.option_strings[0] if action.option_strings else action.dest) not in KNOWN_WITHOUT_HELP]
    assert missing == [], f"nbo {name}: options without help: {missing}"


@pytest.mark.parametrize("name", ["teller", "api", "mobile", "servers", "demo", "simulate"])
def test_every_option_says_its_default(name):
    """An option taking a value names its default (the value, or what happens without it); a flag
    says what happens without it."""
    silent = [action.option_strings[0] for parser, action in _options(name)
              if action.option_strings and "default" not in _shown_help(parser, action)]
    assert silent == [], f"nbo {name}: options whose help does not state the default: {silent}"


def test_a_default_is_shown_with_its_value():
    parser = command_parser("demo")
    show = next(a for a in parser._actions if "--show" in a.option_strings)
    assert "(default 2)" in _shown_help(parser, show)
    parser = command_parser("api")
    level = next(a for a in parser._actions if "--log-level" in a.option_strings)
    assert "(default: warning)" in _shown_help(parser, level)


def test_api_and_worker_spell_the_log_level_alike():
    for name in ("api", "worker"):
        args = command_parser(name).parse_args(["--log-level", "info"])
        assert args.log_level == "info", name


def test_api_takes_host_port_and_workers():
    args = command_parser("api").parse_args(["--port", "8123", "--host", "0.0.0.0", "--workers", "2"])
    assert (args.port, args.host, args.workers) == (8123, "0.0.0.0", 2)
    with pytest.raises(SystemExit):
        command_parser("api").parse_args(["--port", "70000"])

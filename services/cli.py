"""The ``nbo`` command line. Each sub-command lives in its own module under ``services.commands``
with ``add_arguments(parser)`` and ``run(args) -> int``; modules are imported only when used."""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("services.commands.demo", "run the whole loop on simulated traffic"),
    "api": ("services.commands.api", "serve the offer API"),
    "worker": ("services.commands.worker", "run a stream worker"),
    "servers": ("services.commands.servers", "start the embedded Kafka and Redis servers"),
    "simulate": ("services.commands.simulate", "write simulated bank traffic"),
    "import": ("services.commands.import_", "load a bank's history files into the training store"),
    "snapshot": ("services.commands.snapshot", "fold an event log into customer states as of a time"),
    "train": ("services.commands.train", "train a model and write it to the registry"),
    "evaluate": ("services.commands.evaluate", "offline evaluation against baselines"),
    "backtest": ("services.commands.backtest", "the offers the engine would have made at a past date, scored"),
    "tune": ("services.commands.tune", "grid search of model parameters"),
    "promote": ("services.commands.promote", "make a registry version current"),
    "levers": ("services.commands.levers", "push the marketing policy to every API replica"),
    "replay": ("services.commands.replay", "rebuild customer state from the log"),
    "report": ("services.commands.report", "how well the offers work: treatment against control"),
    "teller": ("services.commands.teller", "a teller terminal session"),
    "mobile": ("services.commands.mobile", "print mobile recommendation slots"),
}


class HelpWithDefaults(argparse.HelpFormatter):
    """Each option's help ends with its default, ``(default: 3)``, unless the help already says what
    the default is, or the option is a flag (off unless given) or has no default (``None``)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text or action.default in (None, False, argparse.SUPPRESS) or action.nargs == 0
                or not action.option_strings):
            return text
        return f"{text} (default: %(default)s)"


def command_parser(name: str) -> argparse.ArgumentParser:
    """The argument parser of ``nbo <name>``, its options added by the sub-command's module."""
    module = importlib.import_module(COMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"nbo {name}", description=COMMANDS[name][1],
                                     formatter_class=HelpWithDefaults)
    module.add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="nbo", description="Next-best-offer engine for retail banks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in COMMANDS:
        parser.print_help()
        return 0 if not argv or argv[0] in {"-h", "--help"} else 2
    name = argv[0]
    try:
        module = importlib.import_module(COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name == COMMANDS[name][0]:
            print(f"nbo {name}: not available in this build", file=sys.stderr)
            return 2
        raise
    args = command_parser(name).parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())

"""`edge-agent`: the gateway's command line. One module per command group builds its parsers and
handlers; this one puts them together, sets up logging and turns known errors into exit code 2."""

from __future__ import annotations

import argparse
import logging
import sys

from edge_agent.bench import loso_cli
from edge_agent.cli import agent, bench, models, specialize, streams
from edge_agent.config import ConfigError
from edge_agent.fleet import commands as fleet_commands
from edge_agent.pipeline.sources import SourceError
from edge_agent.redact import redact_text
from models.exceptions import ModelError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-agent",
        description="FrameSieve gateway agent: decide most camera frames locally with a distilled "
                    "student, escalate only the uncertain ones to the accurate cloud model.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--log-format", choices=["text", "json"],
                        help="log lines as text or JSON objects (default: json for `run`, text otherwise)")
    sub = parser.add_subparsers(dest="command", required=True)
    agent.add_commands(sub)
    bench.add_commands(sub)
    streams.add_commands(sub)
    group = sub.add_parser("models", help="fetch, train, fine-tune, benchmark and verify models")
    msub = group.add_subparsers(dest="models_command", required=True)
    loso_cli.add_parsers(msub)
    models.add_commands(msub)
    specialize.add_commands(msub)
    fleet_commands.add_commands(sub, msub)
    _describe_commands(parser)
    return parser


def _describe_commands(parser: argparse.ArgumentParser) -> None:
    """Each command's `--help` opens with what it does: its one-line help from the command list, where it has
    no description of its own (argparse shows a sub-command's help only in its parent's list)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                child = action.choices[choice.dest]
                if child.description is None and choice.help:
                    child.description = choice.help.replace("%%", "%")  # help is %-formatted, this is not
                _describe_commands(child)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from edge_agent.logs import setup_logging

    setup_logging(logging.DEBUG if args.verbose else logging.INFO,
                  args.log_format or ("json" if args.command == "run" else "text"))
    try:
        return args.func(args)
    except (ModelError, ConfigError, SourceError) as exc:
        print(f"error: {redact_text(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

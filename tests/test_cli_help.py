"""Every command's `--help` says what the command does, not only its flags."""

from __future__ import annotations

import argparse

import pytest


def _commands(parser: argparse.ArgumentParser, path: tuple = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


@pytest.mark.parametrize("module", ["edge_agent.cli", "cloud.cli"])
def test_every_command_help_opens_with_what_it_does(module):
    import importlib

    parser = importlib.import_module(module).build_parser()
    commands = dict(_commands(parser))
    assert ("sieve",) in commands or ("validate-config",) in commands  # the walk found the commands
    missing = [" ".join(path) for path, child in commands.items() if not (child.description or "").strip()]
    assert not missing, f"commands whose --help does not say what they do: {missing}"
    shown = [" ".join(path) for path, child in commands.items() if "%%" in child.format_help()]
    assert not shown, f"a literal %% in --help of {shown}"

"""Every subcommand's --help says what it does, shows an example and the exit codes."""

from __future__ import annotations

import argparse

import pytest

from benchfab.cli import build_parser


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_subcommand_help_has_what_an_example_and_exit_codes(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    proc = cli(name, "--help")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    description = _subcommands()[name].description
    assert description and description.rstrip(".") in " ".join(text.split())
    assert f"benchfab {name} " in text.split("usage:", 1)[1].split("\n", 1)[1]  # an example, after the usage line
    assert "exit codes:" in text and "  3 " in text and "  130 " in text
    for action in _subcommands()[name]._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            assert action.help, f"benchfab {name} {action.option_strings[0]} has no help text"

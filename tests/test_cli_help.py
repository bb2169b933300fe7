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
    codes = text.split("exit codes:", 1)[1]
    assert all(f"\n  {code} " in codes for code in (0, 1, 2, 130)), codes
    if name not in OWN_EXIT_CODES:
        assert "\n  3 " in codes  # the generic list
    for action in _subcommands()[name]._actions:
        if action.option_strings and action.help != argparse.SUPPRESS:
            assert action.help, f"benchfab {name} {action.option_strings[0]} has no help text"


# Commands whose 1 means something of their own, and the words their --help uses for it.
OWN_EXIT_CODES = {
    "compare": "1    a regression: a key is worse, failed, or changed what it measured",
    "diagnose": "1    a verdict names a fault (dead, bad-node,",
    "report": "1    a file could not be written",
}


@pytest.mark.parametrize("name", sorted(OWN_EXIT_CODES))
def test_help_says_what_1_means_for_this_command(cli, name: str) -> None:  # type: ignore[no-untyped-def]
    codes = cli(name, "--help").stdout.split("exit codes:", 1)[1]
    assert OWN_EXIT_CODES[name] in codes
    # not the generic list, which speaks of tests a sweep ran
    assert "every test ok" not in codes and "test failed, timed out" not in codes and "\n  3 " not in codes


def test_readme_shows_every_subcommand() -> None:
    from tests.helpers import ROOT

    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## The CLI"):]
    block = block[block.index("```"):]
    block = block[:block.index("```", 3)]
    assert [n for n in sorted(_subcommands()) if f"benchfab {n} " not in block] == []

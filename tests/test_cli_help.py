"""Every command and option of `edoc` explains itself in --help."""

from __future__ import annotations

from collections.abc import Iterator

import click
from click.testing import CliRunner

from edoc.cli import failures, main


def _commands(group: click.Group, path: str = "edoc") -> Iterator[tuple[str, click.Command]]:
    context = click.Context(group)
    for name in group.list_commands(context):  # the top group imports its commands when asked
        command = group.get_command(context, name)
        assert command is not None, name
        yield f"{path} {name}", command
        if isinstance(command, click.Group):
            yield from _commands(command, f"{path} {name}")


def test_every_command_and_option_has_help() -> None:
    commands = dict(_commands(main))
    assert {"edoc pack", "edoc keys list", "edoc serve node", "edoc simulate", "edoc bench"} <= set(
        commands
    )
    missing = [
        f"{path} {option.opts[0]}"
        for path, command in commands.items()
        for option in command.params
        if isinstance(option, click.Option) and not option.help
    ]
    assert missing == []
    assert [path for path, command in commands.items() if not command.help] == []


def test_the_top_help_says_how_a_faults_traceback_is_shown() -> None:
    """A fault of edoc is one line (edoc.cli.failures): how to see more is in --help."""
    assert f"{failures.DEBUG_VARIABLE}=1" in CliRunner().invoke(main, ["--help"]).output

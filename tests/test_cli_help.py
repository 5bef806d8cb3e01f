"""Every command and option of `edoc` explains itself in --help."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
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


def _help(*command: str) -> str:
    result = CliRunner().invoke(main, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())  # click wraps its lines: judge the words


@pytest.mark.parametrize(
    "command", [("serve", "hub"), ("serve", "node"), ("hub", "add-node"), ("agency", "add")]
)
def test_a_services_store_option_names_every_scheme_it_takes(command: tuple[str, ...]) -> None:
    """README runs the hub on PostgreSQL (`serve hub --store postgresql://…`): a newcomer
    reading only --help was told of SQLite URLs alone."""
    text = _help(*command)
    assert "sqlite:///" in text
    assert "postgresql://" in text


def test_simulate_says_what_it_does_without_days_or_speed() -> None:
    """Without --days, --year, --speedup or --as-fast-as-possible a simulation plays the
    first working day as fast as possible: --help said neither."""
    text = _help("simulate")
    assert "[default: 1, unless --year]" in text
    assert "the default without --speedup" in text


def test_keys_revoke_says_what_an_orgid_revokes_and_the_reasons() -> None:
    """`keys revoke ORGID` revokes every unrevoked certificate of it, TLS and personal ones
    too: an operator must know before running it."""
    text = _help("keys", "revoke")
    assert "every unrevoked certificate of ORGID" in text
    assert "keyCompromise" in text

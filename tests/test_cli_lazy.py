"""The `edoc` group imports a command's module only when that command is asked for."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from edoc import cli

# what a node's `edoc serve node` has no use for
UNUSED_BY_A_NODE = ("edoc.sim", "edoc.bench", "edoc.cli.archive", "edoc.hub.app", "rich.progress")


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_name_finds_the_command_of_that_name(name: str) -> None:
    command = cli.main.get_command(click.Context(cli.main), name)
    assert command is not None and command.name == name


def test_an_unknown_command_is_still_a_usage_error() -> None:
    assert cli.main.get_command(click.Context(cli.main), "no-such-command") is None


def test_serving_a_node_imports_neither_the_simulator_nor_the_hub() -> None:
    probe = (
        "import sys\n"
        "from edoc.cli import main\n"
        "try:\n"
        "    main(['serve', 'node', '--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = done.stderr.split()
    assert "edoc.cli.serve" in loaded
    assert [m for m in loaded if m.startswith(UNUSED_BY_A_NODE)] == []

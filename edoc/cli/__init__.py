"""The ``edoc`` command: one group, its commands registered from the modules that own them.

Every command exits 0 on success; on failure it prints one line, ``error CODE: message``,
on stderr and exits non-zero; :mod:`edoc.cli.failures` is the one place that decides
the line and the exit code.

A command's module is imported when that command runs (or help lists it), not when the
group starts: each of a network's ~86 services is an ``edoc serve …``, and importing the
simulator, the benchmark, the archive and the dashboards' commands cost each of them CPU
at start-up, all of them starting at once.
"""

from __future__ import annotations

import importlib

import click

from edoc.cli.failures import EdocGroup

# command name → (module, attribute): where each top-level command lives
COMMANDS = {
    "pack": ("edoc.cli.envelope", "pack"),
    "unpack": ("edoc.cli.envelope", "unpack"),
    "inspect": ("edoc.cli.envelope", "inspect"),
    "verify": ("edoc.cli.envelope", "verify"),
    "send": ("edoc.cli.envelope", "send"),
    "keys": ("edoc.cli.keys", "keys"),
    "archive": ("edoc.cli.archive", "archive"),
    "serve": ("edoc.cli.serve", "serve"),
    "hub": ("edoc.cli.serve", "hub"),
    "agency": ("edoc.cli.serve", "agency"),
    "stats": ("edoc.cli.stats", "stats"),
    "up": ("edoc.cli.up", "up"),
    "simulate": ("edoc.sim.command", "simulate_command"),
    "bench": ("edoc.bench.command", "bench_command"),
}


class LazyGroup(EdocGroup):
    """The group whose commands are imported by name, when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands or cmd_name not in COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute = COMMANDS[cmd_name]
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{module}.{attribute} is not a click command")
        self.add_command(command, cmd_name)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="edoc")
def main() -> None:
    """edoc: electronic document exchange between state agencies (edXML).

    \b
    Commands that use keys take the network's --data-dir ($EDOC_DATA_DIR, default data,
    as `make run` starts it) and find the keys in DATA_DIR/keys.
    Exit codes: 0 done, 1 refused input, 2 usage, 3 a fault of edoc or of a service,
    4 the operating system refused (permission, address in use).
    EDOC_DEBUG=1 prints the traceback of a fault of edoc (EDOC-000) as well.
    """


__all__ = ["main"]

"""The ``edoc`` command: one group, its commands registered from the modules that own them.

Every command exits 0 on success; on failure it prints one line, ``error CODE: message``,
on stderr and exits non-zero; :mod:`edoc.cli.failures` is the one place that decides
the line and the exit code.
"""

from __future__ import annotations

import click

from edoc.bench import command as bench
from edoc.cli import archive, envelope, keys, serve, stats, up
from edoc.cli.failures import EdocGroup
from edoc.sim import command as simulate


@click.group(cls=EdocGroup)
@click.version_option(package_name="edoc")
def main() -> None:
    """edoc: electronic document exchange between state agencies (edXML).

    \b
    Commands that use keys take the network's --data-dir ($EDOC_DATA_DIR, default data,
    as `make run` starts it) and find the keys in DATA_DIR/keys.
    Exit codes: 0 done, 1 refused input, 2 usage, 3 a fault of edoc or of a service,
    4 the operating system refused (permission, address in use).
    """


for command in (
    *envelope.COMMANDS,
    keys.keys,
    archive.archive,
    *serve.COMMANDS,
    stats.stats,
    up.up,
    simulate.simulate_command,
    bench.bench_command,
):
    main.add_command(command)

__all__ = ["main"]

"""The ``edoc`` command (being split into command groups)."""

from edoc.cli.envelope import main

__all__ = ["main"]

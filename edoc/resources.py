"""The data files edoc ships beside its code: the schemas and the seeds.

In the repository they stay at the top (``schemas/``, ``seeds/``); the build maps them
into the package as ``edoc.schemas`` and ``edoc.seeds`` (pyproject.toml's package-dir),
so a wheel installed anywhere and the editable install of a checkout both find them
here, through importlib.resources. Nothing else in edoc knows where they lie.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


def schema(name: str) -> Traversable:
    """A file of ``schemas/``: ``edxml.xsd``, ``metadata.schema.json``, ..."""
    return resources.files("edoc.schemas") / name


def schema_file(name: str) -> AbstractContextManager[Path]:
    """A schema as a file on disk, for a parser that resolves the schemas it imports
    (edxml.xsd imports xmldsig.xsd) by their location beside it."""
    return resources.as_file(schema(name))


def seed(name: str) -> Traversable:
    """A file or folder of ``seeds/``: ``organizations.csv``, ``profiles``, ..."""
    return resources.files("edoc.seeds") / name

"""Options the commands share, and where the keys are when none is named.

A network made by ``edoc up --data-dir DIR`` (``make run``: ``data``) keeps its CA and
certificates in ``DIR/keys``. Commands that use keys take that network directory as
``--data-dir`` (or ``$EDOC_DATA_DIR``; default ``data``) and look in its ``keys``
folder unless ``--keys-dir`` names another. The ``serve`` and admin commands use
``--data-dir`` for the one service's own folder (``data/hub``, ``data/nodes/H53``), so
for them the keys default to ``$EDOC_DATA_DIR/keys`` (``data/keys``).
"""

from __future__ import annotations

import functools
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from edoc import errors
from edoc.keystore import KeyStore
from edoc.urls import without_password

F = TypeVar("F", bound=Callable[..., Any])

DATA_DIR_ENV = "EDOC_DATA_DIR"
DEFAULT_DATA_DIR = Path("data")

network_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar=DATA_DIR_ENV,
    default=DEFAULT_DATA_DIR,
    show_default=True,
    show_envvar=True,
    help="The network's data directory, as `edoc up --data-dir` made it; its keys are in"
    " DATA_DIR/keys.",
)

_keys_dir_option = click.option(
    "--keys-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the CA, certificates and keys live.  [default: DATA_DIR/keys]",
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


class ServiceUrl(click.types.StringParamType):  # a string (click>=8.1: no generic ParamType)
    """A hub's or a node's base URL: http:// or https://, a host, perhaps a port. Without
    its scheme (``127.0.0.1:8701``) aiohttp reads the host as the scheme: `send` failed as
    if the node were unreachable, and a node given such a --hub retried it for ever; a
    usage error, said at once, is what the mistake is."""

    name = "url"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = super().convert(value, param, ctx)
        said = without_password(text)  # the URL may carry one: never repeated
        try:
            parts = urllib.parse.urlsplit(text)
            parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
        except ValueError:
            # not urllib's words: they quote the port as it read it, which is part of the
            # password when one holds a '/' ('Port could not be cast … as "pa55"')
            encoded = (
                " (in a password or a token, write / ? # @ as %2F %3F %23 %40)"
                if "@" in text
                else ""
            )
            self.fail(
                f"{said!r} is not a URL: its host, or its port (a number up to 65535),"
                f" cannot be read{encoded}",
                param,
                ctx,
            )
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(
                f"{said!r} is not a service's URL: it needs http:// or https:// and a host,"
                " e.g. http://127.0.0.1:8701",
                param,
                ctx,
            )
        return parts.geturl()  # (the scheme in lowercase: HTTPS:// is https://)


SERVICE_URL = ServiceUrl()  # the type of every option that names a hub or a node


def uses_keys(command: F) -> F:
    """Give the command ``--data-dir`` (the network's) and ``--keys-dir``; it receives
    ``keys_dir`` with the default already applied."""

    @functools.wraps(command)
    def wrapper(*args: Any, data_dir: Path, keys_dir: Path | None, **kwargs: Any) -> Any:
        return command(*args, keys_dir=keys_dir or data_dir / "keys", **kwargs)

    return network_dir_option(_keys_dir_option(wrapper))  # type: ignore[return-value]


def _service_keys(ctx: click.Context, _param: click.Parameter, keys_dir: Path) -> Path:
    """``keys_dir`` if it holds a CA, else its error, before the command makes anything (a
    node made its store, then failed on a missing file it could not name)."""
    if ctx.resilient_parsing:  # shell completion: nothing runs
        return keys_dir
    origin = ""
    if ctx.get_parameter_source("keys_dir") is click.core.ParameterSource.DEFAULT:
        origin = f" (${DATA_DIR_ENV}/keys)" if os.environ.get(DATA_DIR_ENV) else " (the default)"
    existing_keys(keys_dir, origin, f"give --keys-dir, or the network's folder as ${DATA_DIR_ENV}")
    return keys_dir


service_keys_dir_option = click.option(
    "--keys-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=lambda: Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR) / "keys",
    callback=_service_keys,
    help="Where the CA, certificates and keys live."
    f"  [default: ${DATA_DIR_ENV}/keys, or {DEFAULT_DATA_DIR / 'keys'}]",
)


def existing_keys(
    keys_dir: Path,
    origin: str = "",
    pointing: str = f"give the network's --data-dir (or ${DATA_DIR_ENV}) or --keys-dir",
) -> KeyStore:
    """The key store in ``keys_dir``, or an error that says where it looked (and, as
    ``origin``, why there) and what to do (``pointing``: how the command is told where)."""
    keys = KeyStore(keys_dir)
    if not keys.exists():
        raise errors.KeyStoreMissing(
            f"no CA in {keys_dir}{origin}: {pointing}; `edoc up --data-dir DIR` makes"
            " DIR/keys, `edoc keys init` a CA alone"
        )
    return keys


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160)

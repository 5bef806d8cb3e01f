"""The one place where a failed command becomes its line on stderr and its exit code.

Every command of the ``edoc`` group runs inside :meth:`EdocGroup.invoke`: an
:class:`~edoc.errors.EdocError` is printed as ``error CODE: message``; the operating
system's refusals (``OSError``) are first translated into the error tree here, so that
each names its path (or address) and says what to do. Any other exception is a fault
of edoc that no part of it translated (a bug): it too is one line, EDOC-000, and its
traceback goes where a developer finds it, a service's log, or stderr when
``EDOC_DEBUG`` is set. Exit codes:

====  ===============================================================================
0     success
1     refused input: a bad document, package or argument value, a missing file (also
      the CA: no CA in the keys folder, EDOC-KEY-001), a damaged file of the keys
      folder (EDOC-KEY-000, EDOC-KEY-004: named, to restore from a copy)
2     usage error, as click reports it (unknown option, missing argument)
3     a fault of edoc or of the service it talked to (status 5xx)
4     the operating system refused: permission denied, address in use, other OS errors
====  ===============================================================================
"""

from __future__ import annotations

import errno
import os
import re
import sys
import traceback
from typing import Any, NoReturn

import click

from edoc import errors

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_FAULT = 3
EXIT_SYSTEM = 4
DEBUG_VARIABLE = "EDOC_DEBUG"  # set (to anything but ""): a fault's traceback on stderr too

# click's own ways out (usage errors, Ctrl-C's abort, an exit code): click answers them
_CLICK_ENDINGS = (click.exceptions.ClickException, click.exceptions.Abort, click.exceptions.Exit)


class EdocGroup(click.Group):
    """A click group whose commands all fail the same way (see the module's table)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except errors.EdocError as exc:
            fail(exc)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # the reader went away (`| head`): click's own case
                raise
            fail(from_os_error(exc))
        except _CLICK_ENDINGS:
            raise
        except Exception as exc:  # the last resort: a bug's traceback is not the CLI's answer
            fail(unexpected(exc))


def fail(error: errors.EdocError) -> NoReturn:
    click.echo(f"error {error.code}: {error.message}", err=True)
    raise click.exceptions.Exit(exit_code(error))


# the line fail() prints, as read back from the log of a service edoc started
_FAILURE_LINE = re.compile(r"^error (EDOC-[A-Z0-9-]+): (.+)$")
# what a service started by `edoc up` fails with that is no fault of edoc, to be said as
# such by the one who started it: the operating system's refusals (its address in use),
# and a file of the keys folder missing or damaged (the service reads its own keys)
_RELAYED: dict[str, type[errors.EdocError]] = {
    kind.code: kind
    for kind in (
        errors.SystemRefused,
        errors.PermissionRefused,
        errors.AddressInUse,
        errors.KeyStoreError,
        errors.KeyStoreMissing,
        errors.UnknownCertificate,
        errors.DamagedKey,
    )
}


def relayed_refusal(output: str) -> tuple[type[errors.EdocError], str] | None:
    """The kind and message of the refusal (see _RELAYED) that an ``edoc`` command printed
    last in ``output`` (its stderr, or its log); None if it printed none."""
    for line in reversed(output.splitlines()):
        found = _FAILURE_LINE.match(line.strip())
        if found and found[1] in _RELAYED:
            return _RELAYED[found[1]], found[2]
    return None


def exit_code(error: errors.EdocError) -> int:
    if isinstance(error, errors.SystemRefused):
        return EXIT_SYSTEM
    if isinstance(error, errors.KeyStoreError):
        # the operator's files: the CA missing, or a file of the keys folder damaged (a
        # service answers 500 for them: its own files, not its caller's input)
        return EXIT_REFUSED
    return EXIT_REFUSED if error.status < 500 else EXIT_FAULT


def unexpected(exc: Exception) -> errors.EdocError:
    """EDOC-000 for an exception no part of edoc translated, its traceback kept for a
    developer: logged by a service (its log is where its operator looks), printed on
    stderr with EDOC_DEBUG set, and otherwise the line says how to see it."""
    what = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever it says
    if _log_traceback(exc):
        return errors.EdocError(f"an unexpected fault of edoc ({what}); its traceback is logged")
    if os.environ.get(DEBUG_VARIABLE):
        traceback.print_exception(exc, file=sys.stderr)
        return errors.EdocError(f"an unexpected fault of edoc ({what})")
    return errors.EdocError(
        f"an unexpected fault of edoc ({what}); {DEBUG_VARIABLE}=1 shows its traceback"
    )


def _log_traceback(exc: Exception) -> bool:
    """Log ``exc`` with its traceback if this process has a log (a service configured one,
    edoc.logs); whether it had. structlog is imported only here, on a fault."""
    import structlog

    if not structlog.is_configured():
        return False
    structlog.get_logger().error("unexpected fault", exc_info=exc)
    return True


_MISSING = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR}
_PERMISSION = {errno.EACCES, errno.EPERM, errno.EROFS}


def from_os_error(exc: OSError) -> errors.EdocError:
    """The error-tree form of an operating-system refusal, naming what it concerns."""
    what = _subject(exc)
    if exc.errno in _MISSING:
        return errors.FileMissing(f"{what}: {_reason(exc)}; check the path")
    if exc.errno in _PERMISSION:
        return errors.PermissionRefused(
            f"{what}: {_reason(exc)}; give this user access to it or choose another path"
        )
    if exc.errno == errno.EADDRINUSE:
        return errors.AddressInUse(
            f"{_reason(exc)}; stop what listens there (another hub, node or `edoc up`)"
            " or choose another --port / --base-port"
        )
    return errors.SystemRefused(f"{what}: {_reason(exc)}")


def _subject(exc: OSError) -> str:
    if exc.filename is None:
        return "a file or folder (the system did not say which)"
    if exc.filename2 is not None:
        return f"{exc.filename} → {exc.filename2}"
    return str(exc.filename)


def _reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc)
    return reason[:1].lower() + reason[1:]

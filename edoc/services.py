"""Services run as processes on this machine: waiting until they answer, stopping them
on SIGINT or SIGTERM, and their end with the launcher that started them.

A start-up wait has no fixed limit per service: 85 nodes importing at once on a busy
2-core machine take minutes, a stuck one takes for ever. It keeps waiting while services
become healthy or the ones still starting use CPU, and gives up after a stall (or an
overall bound), naming what did not answer and showing the end of its log.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edoc import errors
from edoc.cli.failures import exit_code, relayed_refusal

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# a service that ended may have got its process group's SIGINT a moment before we did
SIGNAL_RACE = 0.5
LOG_LINES = 15  # of a failed service's log, in the error
POLL = 0.1  # seconds between two looks at services starting, at least
# in a service's environment: the pid of the launcher that started it (tie_to_launcher)
LAUNCHER_VARIABLE = "EDOC_LAUNCHER_PID"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class StopRequested(Exception):
    """SIGINT or SIGTERM arrived while services were starting."""


@dataclass
class StopFlag:
    requested: bool = False

    def check(self) -> None:
        if self.requested:
            raise StopRequested


@contextlib.contextmanager
def stop_signals() -> Iterator[StopFlag]:
    """Inside, SIGINT and SIGTERM only raise the flag, whatever they did before: a script's
    ``edoc up &`` inherits SIGINT ignored, yet its services (aiohttp installs its own
    handlers) still stop on the group's SIGINT, and it must stop with them."""
    flag = StopFlag()

    def request(_signum: int, _frame: object) -> None:
        flag.requested = True

    previous = {sig: signal.signal(sig, request) for sig in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


class Running(Protocol):
    """A service's process as this module and edoc.launcher use it: a subprocess.Popen,
    or a process forked from a preloaded server (edoc.launcher.Forked)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


@dataclass(frozen=True)
class Service:
    name: str
    url: str
    process: Running
    log: Path | None = None


@dataclass(frozen=True)
class Patience:
    stall: float = 90.0  # seconds with no service healthier and none of them using CPU
    bound: float = 1200.0  # seconds, however much progress


def exited(service: Service, flag: StopFlag | None) -> errors.EdocError:
    """The error for a service that ended on its own; StopRequested if a stop signal
    explains it (the group's SIGINT reaches the services too)."""
    if flag is not None:
        time.sleep(SIGNAL_RACE)
        flag.check()
    refused = _refusal_said(service)
    if refused is not None:
        return refused
    returncode = service.process.returncode
    return errors.EdocError(f"{service.name} exited with {returncode}{log_tail(service)}")


def _refusal_said(service: Service) -> errors.EdocError | None:
    """The refusal ``service`` printed before it exited (an address in use, a damaged
    file of the keys folder: edoc.cli.failures.relayed_refusal), under its own code and
    exit class, naming the service."""
    # its last lines only: the log goes on from run to run, with older runs' failures
    found = relayed_refusal("\n".join(_last_lines(service) or []))
    if found is None:
        return None
    kind, message = found
    refused = kind(f"{service.name} exited: {message} (its log: {service.log})")
    # the exit that line gives: else the line is not what this run ended with
    return refused if exit_code(refused) == service.process.returncode else None


def wait_healthy(
    services: list[Service],
    context: Any,
    registered: bool = False,
    flag: StopFlag | None = None,
    patience: Patience = Patience(),
) -> None:
    """Wait until every service answers /healthz (and, with ``registered``, has told the
    hub its agencies, so that nothing sent to them is refused as unknown)."""
    pending = list(services)
    began = last_progress = time.monotonic()
    used = {s.process.pid: _cpu_seconds(s.process.pid) for s in pending}
    while pending:
        if flag is not None:
            flag.check()
        pass_began = time.monotonic()
        for service in list(pending):
            if service.process.poll() is not None:
                raise exited(service, flag)
            if _healthy(service.url, context, registered):
                pending.remove(service)
                last_progress = time.monotonic()
        for service in pending:
            now = _cpu_seconds(service.process.pid)
            if now is None or now != used[service.process.pid]:
                used[service.process.pid] = now
                last_progress = time.monotonic()
        if pending:
            _give_up_if_stuck(pending, began, last_progress, patience)
            time.sleep(_pause(time.monotonic() - pass_began))


def _pause(pass_took: float) -> float:
    """Seconds to wait before the next look: at least POLL, and long enough that looking
    takes a third of the time at most. Looking at 85 starting nodes (a /healthz and a
    /proc read each) every 0.1 s took CPU the nodes needed to start."""
    return max(POLL, 2 * pass_took)


def _give_up_if_stuck(
    pending: list[Service], began: float, last_progress: float, patience: Patience
) -> None:
    now = time.monotonic()
    if now - last_progress > patience.stall:
        why = f"no progress in {patience.stall:.0f} s"
    elif now - began > patience.bound:
        why = f"not within {patience.bound:.0f} s"
    else:
        return
    names = ", ".join(s.name for s in pending)
    raise errors.EdocError(f"{names} did not become healthy ({why}){log_tail(pending[0])}")


def _healthy(url: str, context: Any, registered: bool) -> bool:
    secure = context if url.startswith("https") else None
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=2, context=secure) as answer:  # noqa: S310
            return not registered or bool(json.load(answer).get("registered"))
    except (OSError, ValueError):
        return False


def _cpu_seconds(pid: int) -> float | None:
    """CPU time ``pid`` used so far; None where /proc cannot say (then being alive is
    all the progress a service can show)."""
    fields = _stat(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parent_of(pid: int) -> int | None:
    fields = _stat(pid)
    return None if fields is None else int(fields[1])


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (which may hold spaces); None
    where /proc cannot say."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rpartition(")")[2].split()


def tie_to_launcher() -> None:
    """In a service a launcher started (edoc.launcher: `edoc up`, `edoc simulate`): end
    with it, however it ends. Killed outright (SIGKILL, the OOM killer), it stopped
    nothing: its services ran on without it, its hold on the network's folder gone
    (edoc.folderlock), and a later `edoc up` there found their ports taken, or ran a
    second hub on their stores. The kernel sends the service SIGTERM, what the
    launcher's own stop sends, when its parent ends (Linux; elsewhere they are not
    tied). It is the parent *thread* that counts: the launcher starts services from one
    that lasts as long as they do. The variable leaves the environment: what the service
    starts was not started by the launcher."""
    launcher = os.environ.pop(LAUNCHER_VARIABLE, None)
    if launcher is None or not signalled_when_parent_ends(signal.SIGTERM):
        return
    parent = os.getppid()
    # the parent is the launcher (edoc.launcher.spawn), or its fork server, which ends
    # when the launcher does (edoc.preloaded); any other took the service in as its
    # parent had ended already, before the kernel was asked: no signal will come
    if int(launcher) not in (parent, _parent_of(parent)):
        raise SystemExit(f"the launcher that started this service (pid {launcher}) has ended")


def signalled_when_parent_ends(sig: int) -> bool:
    """Ask the kernel for ``sig`` when this process's parent ends; whether it will."""
    if not sys.platform.startswith("linux"):
        return False
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    # (a sandbox may refuse it: the service then runs untied, as elsewhere)
    answer: int = prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(sig), 0, 0, 0)
    return answer == 0


def log_tail(service: Service) -> str:
    """The end of ``service``'s log, for an error that says why it failed."""
    lines = _last_lines(service)
    if lines is None:
        return ""
    shown = "\n".join(lines)
    return f"; the end of {service.log}:\n{shown}" if shown else f"; {service.log} is empty"


def _last_lines(service: Service) -> list[str] | None:
    """The last LOG_LINES lines of ``service``'s log; None where it has none or it cannot
    be read."""
    if service.log is None:
        return None
    try:
        text = service.log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return text.splitlines()[-LOG_LINES:]

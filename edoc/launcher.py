"""Running a planned network (edoc.network): its services spawned with their environment
(secrets there, never on the command line), started hub first, watched, and stopped.

A network's ~86 services are each an ``edoc serve …``; started as new interpreters, each
imports the same modules (~1 s of CPU each, on a 2-core machine most of a national
network's start). :func:`start_preloaded` instead forks them from a server that imported
those modules once (multiprocessing's forkserver): the same command, log and
environment, in a process that starts with its imports done.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from multiprocessing.context import ForkServerContext, ForkServerProcess
from pathlib import Path
from typing import Any, TypeVar

from edoc import errors, services, tls
from edoc.dashboard.auth import VARIABLE as OPERATOR_VARIABLE
from edoc.keystore import KeyStore
from edoc.network import (
    HUB_TOKEN_VARIABLE,
    Network,
    commands,
    edoc_command,
    hub_names,
    provision,
    register_tokens,
)

P = TypeVar("P", bound=services.Running)
Spawn = Callable[[Network, str, list[str]], P]
# what every `edoc serve …` imports (edoc.launcher brings edoc.network, which brings both
# apps; the SQLite stores are imported when a service opens one, as the network's do)
PRELOAD = [
    "edoc.cli",
    "edoc.cli.serve",
    "edoc.launcher",
    "edoc.store.sqlite.hub",
    "edoc.store.sqlite.node",
    "edoc.preloaded",  # last: freezes what the others imported
]


def start(
    network: Network, node_args: tuple[str, ...] = (), flag: services.StopFlag | None = None
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """Start the hub, then every node at once, and wait until all of them answer. With
    ``flag``, a stop signal during the wait stops what started and raises StopRequested."""
    return _start(network, node_args, flag, spawn)


def start_preloaded(network: Network, node_args: tuple[str, ...] = ()) -> list[tuple[str, Forked]]:
    """As :func:`start`, each service forked from the preloaded server (see above)."""
    return _start(network, node_args, None, fork)


def _start(
    network: Network,
    node_args: tuple[str, ...],
    flag: services.StopFlag | None,
    spawner: Spawn[P],
) -> list[tuple[str, P]]:
    (network.data_dir / "logs").mkdir(exist_ok=True)
    context = tls.admin_context(KeyStore(network.keys_dir))
    hubs = hub_names(network)
    urls = [network.spec["hub"]["url"]] * len(hubs) + [n["url"] for n in network.spec["nodes"]]
    started: list[services.Service] = []
    processes: list[tuple[str, P]] = []
    if flag is not None:
        flag.check()
    try:
        for (name, command), url in zip(commands(network, node_args), urls, strict=True):
            before = times_started(log_path(network, name))
            process = spawner(network, name, command)
            processes.append((name, process))
            started.append(services.Service(name, url, process, log_path(network, name)))
            if name in hubs:  # nodes register with it as they start
                services.wait_healthy(started, context, flag=flag)
                wait_listening(started[-1], before, flag)  # another may have answered
        services.wait_healthy(started[len(hubs) :], context, registered=True, flag=flag)
    except BaseException:
        stop(processes)
        raise
    return processes


def times_started(log: Path) -> int:
    """How often the service logging to ``log`` said it listens."""
    return log.read_bytes().count(b"hub started") if log.exists() else 0


def wait_listening(service: services.Service, before: int, flag: services.StopFlag | None) -> None:
    """Until ``service`` logged that it listens (more often than ``before``): hub
    instances share one address, where /healthz may be answered by another of them."""
    assert service.log is not None
    deadline = time.monotonic() + services.Patience.stall
    while times_started(service.log) <= before:
        if flag is not None:
            flag.check()
        if service.process.poll() is not None:
            raise services.exited(service, flag)
        if time.monotonic() > deadline:
            raise errors.EdocError(f"{service.name} did not start listening")
        time.sleep(0.1)


def run(network: Network, announce: Callable[[], None], node_args: tuple[str, ...] = ()) -> None:
    """`edoc up`: provision and start the network, ``announce`` it, serve until SIGINT or
    SIGTERM (also one inherited as ignored), then stop every service."""
    with services.stop_signals() as flag:
        provision(network)  # a stop asked meanwhile is honoured once this is whole
        register_tokens(network)
        try:
            processes = start(network, node_args, flag)
        except services.StopRequested:
            return
        try:
            announce()
            _watch(network, processes, flag)
        except services.StopRequested:
            pass
        finally:
            stop(processes)


def _watch(
    network: Network,
    processes: list[tuple[str, subprocess.Popen[bytes]]],
    flag: services.StopFlag,
) -> None:
    """Until a stop is asked; a service that ends on its own is an error."""
    while not flag.requested:
        for name, process in processes:
            if process.poll() is not None:
                service = services.Service(name, "", process, log_path(network, name))
                raise services.exited(service, flag)
        time.sleep(0.2)


def log_path(network: Network, name: str) -> Path:
    return network.data_dir / "logs" / f"{name.replace(' ', '-')}.log"


def environment(network: Network, name: str) -> dict[str, str]:
    """What service ``name`` runs with besides its command line: a node's hub token, and
    for every service the operator's dashboard credential; there, not in the command
    line, where every user's `ps` would show them. And this process's pid: the service
    ends with it (edoc.services.tie_to_launcher)."""
    env = os.environ.copy()
    env[OPERATOR_VARIABLE] = network.spec["operator"]["token"]
    env[services.LAUNCHER_VARIABLE] = str(os.getpid())
    for node in network.spec["nodes"]:
        if name == f"node {node['province']}":
            env[HUB_TOKEN_VARIABLE] = node["hub_token"]
    return env


def spawn(network: Network, name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Start one service with its environment, logging to DATA/logs/NAME.log. It ends
    when the thread calling this does (edoc.services.tie_to_launcher): `edoc up` calls
    it from its main thread; another caller, from one that outlives the service."""
    with log_path(network, name).open("ab") as log:
        return subprocess.Popen(command, stdout=log, stderr=log, env=environment(network, name))


def launch(
    network: Network, name: str, command: list[str], url: str, context: Any
) -> subprocess.Popen[bytes]:
    """Start one service and wait until it answers."""
    process = spawn(network, name, command)
    service = services.Service(name, url, process, log_path(network, name))
    try:
        services.wait_healthy([service], context)
    except BaseException:
        stop([(name, process)])
        raise
    return process


def stop(processes: Sequence[tuple[str, services.Running]]) -> None:
    for _, process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for _, process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Forked:
    """A service forked from the preloaded server, with what edoc.services.Running asks
    of a subprocess.Popen (its exit comes through the server: it is not our child)."""

    def __init__(self, process: ForkServerProcess) -> None:
        self.process = process

    @property
    def pid(self) -> int:
        assert self.process.pid is not None  # started
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.exitcode

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0.0)
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # as Popen: never a pid that may have been reused
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@functools.cache
def _preloaded() -> ForkServerContext:
    """The server services are forked from, importing PRELOAD once (at the first fork)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def fork(network: Network, name: str, command: list[str]) -> Forked:
    """Start service ``name`` (its `edoc …` ``command``) forked from the preloaded server,
    with its environment, logging to DATA/logs/NAME.log, as :func:`spawn` does. The
    server, and the services with it, end when the thread that first called this does
    (edoc.preloaded): `edoc simulate` calls it from its main thread; another caller, from
    one that outlives the services (or the server is started again, for the next)."""
    arguments = command[len(edoc_command()) :]  # network.commands put it there
    log = str(log_path(network, name))
    process = _preloaded().Process(
        target=_serve, args=(arguments, environment(network, name), log), name=name
    )
    process.start()
    return Forked(process)


def _serve(arguments: list[str], env: dict[str, str], log: str) -> None:
    """In the forked process: become the service ``edoc ARGUMENTS`` would start."""
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    from edoc.cli import main  # imported already, by the server

    main(arguments, prog_name="edoc")

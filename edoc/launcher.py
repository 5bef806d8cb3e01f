"""Running a planned network (edoc.network): its services spawned with their environment
(secrets there, never on the command line), started hub first, watched, and stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edoc import errors, services, tls
from edoc.dashboard.auth import VARIABLE as OPERATOR_VARIABLE
from edoc.keystore import KeyStore
from edoc.network import (
    HUB_TOKEN_VARIABLE,
    Network,
    commands,
    hub_names,
    provision,
    register_tokens,
)


def start(
    network: Network, node_args: tuple[str, ...] = (), flag: services.StopFlag | None = None
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    """Start the hub, then every node at once, and wait until all of them answer. With
    ``flag``, a stop signal during the wait stops what started and raises StopRequested."""
    (network.data_dir / "logs").mkdir(exist_ok=True)
    context = tls.admin_context(KeyStore(network.keys_dir))
    hubs = hub_names(network)
    urls = [network.spec["hub"]["url"]] * len(hubs) + [n["url"] for n in network.spec["nodes"]]
    started: list[services.Service] = []
    if flag is not None:
        flag.check()
    try:
        for (name, command), url in zip(commands(network, node_args), urls, strict=True):
            before = times_started(log_path(network, name))
            process = spawn(network, name, command)
            started.append(services.Service(name, url, process, log_path(network, name)))
            if name in hubs:  # nodes register with it as they start
                services.wait_healthy(started, context, flag=flag)
                wait_listening(started[-1], before, flag)  # another may have answered
        services.wait_healthy(started[len(hubs) :], context, registered=True, flag=flag)
    except BaseException:
        stop([(s.name, s.process) for s in started])
        raise
    return [(s.name, s.process) for s in started]


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
    line, where every user's `ps` would show them."""
    env = os.environ.copy()
    env[OPERATOR_VARIABLE] = network.spec["operator"]["token"]
    for node in network.spec["nodes"]:
        if name == f"node {node['province']}":
            env[HUB_TOKEN_VARIABLE] = node["hub_token"]
    return env


def spawn(network: Network, name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """Start one service with its environment, logging to DATA/logs/NAME.log."""
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


def stop(processes: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for _, process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

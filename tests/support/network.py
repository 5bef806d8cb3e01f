"""A local network of real processes (hub + nodes, mutual TLS) and agency clients for it."""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from edoc import launcher, network, tls
from edoc.client import AgencyClient
from edoc.keystore import KeyStore

T = TypeVar("T")
FAST_RETRIES = ("--retry-base", "0.1", "--retry-cap", "1")


# the certificates a test network was given, by who they are for: another network of the
# same provinces and agencies starts from a copy of them (issuing them was most of its start)
_issued: dict[str, Path] = {}


def provision(net: network.Network) -> None:
    """network.provision for a test network: the networks of one test run share their CA,
    which no test looks across networks at."""
    wanted = json.dumps(
        [
            (node["province"], [(a["org_id"], a["name"], a["signer"]) for a in node["agencies"]])
            for node in net.spec["nodes"]
        ],
        ensure_ascii=False,
    )
    earlier = _issued.get(wanted)
    if earlier is not None and not net.keys_dir.exists():
        shutil.copytree(earlier, net.keys_dir)  # keeps the keys' 0600
    network.provision(net)
    if earlier is None:
        kept = Path(tempfile.mkdtemp(prefix="edoc-test-keys-")) / "keys"
        shutil.copytree(net.keys_dir, kept)
        atexit.register(shutil.rmtree, kept.parent, ignore_errors=True)
        _issued[wanted] = kept


@dataclass
class LocalNetwork:
    data_dir: Path
    provinces: list[str]
    base_port: int = field(default_factory=network.random_base_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    net: network.Network | None = None

    def start(self) -> LocalNetwork:
        self.net = network.plan(self.data_dir, self.provinces, self.base_port, tls=True)
        provision(self.net)
        network.register_tokens(self.net)
        self.processes = dict(launcher.start(self.net, FAST_RETRIES))
        return self

    @property
    def spec(self) -> dict[str, Any]:
        assert self.net is not None
        return self.net.spec

    def stop(self) -> None:
        launcher.stop(list(self.processes.items()))

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        process.kill()
        process.wait()

    def restart(self, name: str) -> None:
        assert self.net is not None
        commands = dict(network.commands(self.net, FAST_RETRIES))
        urls = {"hub": self.spec["hub"]["url"]} | {
            f"node {n['province']}": n["url"] for n in self.spec["nodes"]
        }
        context = tls.admin_context(KeyStore(self.net.keys_dir))
        self.processes[name] = launcher.launch(self.net, name, commands[name], urls[name], context)

    def agency(self, org_id: str) -> Agency:
        for node in self.spec["nodes"]:
            for item in node["agencies"]:
                if item["org_id"] == org_id:
                    return Agency(node["url"], item["token"], org_id)
        raise KeyError(org_id)

    def hub_stats(self) -> dict[str, Any]:
        assert self.net is not None
        result = subprocess.run(
            [
                *network.edoc_command(),
                "stats",
                "--hub",
                self.spec["hub"]["url"],
                "--json",
                "--keys-dir",
                str(self.net.keys_dir),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        report: dict[str, Any] = json.loads(result.stdout)
        return report


class Agency(AgencyClient):
    """An agency of a test network: the typed client, with the organization it is."""

    def __init__(self, url: str, token: str, org_id: str) -> None:
        super().__init__(url, token)
        self.org_id = org_id


async def eventually(check: Callable[[], Awaitable[T]], timeout: float = 30) -> T:
    """Poll ``check`` until it returns a truthy value (the network is asynchronous)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value or time.monotonic() > deadline:
            assert value, f"not reached within {timeout} s"
            return value
        await asyncio.sleep(0.2)


_numbers = iter(range(1, 1_000_000))


def metadata(sender: str, to: list[str], **changes: Any) -> dict[str, Any]:
    number = next(_numbers)
    data: dict[str, Any] = {
        "from": sender,
        "to": to,
        "code": {"number": str(number), "notation": "UBND-VP"},
        "promulgation": {"place": "Tây Ninh", "date": "2026-11-23"},
        "type": {"code": 1, "name": "Công văn"},
        "subject": f"V/v phối hợp triển khai nhiệm vụ số {number}",
        "due_date": "2099-12-31",
    }
    data.update(changes)
    return data


def simulate(*args: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """`edoc simulate … --json`'s report (run with ``env`` added to the environment); its
    stderr if it fails, which says why."""
    try:
        result = subprocess.run(
            [*network.edoc_command(), "simulate", *args, "--json"],
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired as late:
        raise AssertionError(f"simulate ran over 900 s: {late.stderr!r}") from None
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report

"""`edoc up`: a hub and one node per province as separate processes on this machine.

The first run creates the dev CA and every certificate, tokens for a few agencies per
province, and ``DATA/network.json``; later runs (also after a kill -9 of everything)
read that file back and bring up the same network: same keys, tokens and ports, with
every stored document still there and still on its way.
"""

from __future__ import annotations

import csv
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edoc import errors, pki, tls
from edoc.hub.directory import SEEDS
from edoc.hub.state import HUB_ORG_ID
from edoc.keystore import KeyStore
from edoc.orgid import parse_root_code

PROVINCES = {"H53": "Tây Ninh", "H34": "Kon Tum", "H44": "Phú Thọ", "H12": "Cà Mau"}
AGENCIES = (  # (level-2 group, name): the same few agencies in every province
    ("00", "Ủy ban nhân dân tỉnh {province}"),
    ("07", "Sở Nội vụ tỉnh {province}"),
    ("12", "Sở Thông tin và Truyền thông tỉnh {province}"),
    ("15", "Sở Tài chính tỉnh {province}"),
)
SIGNER = "Chủ tịch UBND tỉnh {province}"
HOSTS = ("localhost", "127.0.0.1")


def province_names() -> dict[str, str]:
    with SEEDS.open(encoding="utf-8") as handle:
        return {
            row["org_id"][-3:]: row["name"]
            .removeprefix("UBND tỉnh ")
            .removeprefix("UBND thành phố ")
            for row in csv.DictReader(handle)
        }


@dataclass
class Network:
    data_dir: Path
    spec: dict[str, Any]

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def path(self) -> Path:
        return self.data_dir / "network.json"

    def save(self) -> None:
        temporary = self.path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds tokens
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(self.spec, out, ensure_ascii=False, indent=2)
        os.replace(temporary, self.path)


def plan(data_dir: Path, provinces: list[str], base_port: int, tls: bool) -> Network:
    """The network in ``data_dir``: read back if it exists, else laid out anew."""
    path = data_dir / "network.json"
    if path.exists():
        return Network(data_dir, json.loads(path.read_text(encoding="utf-8")))
    names = province_names()
    nodes = []
    for index, code in enumerate(provinces, start=1):
        root = parse_root_code(code)
        name = names.get(root.root_code, root.root_code)
        nodes.append(
            {
                "province": root.root_code,
                "name": name,
                "url": f"http://127.0.0.1:{base_port + index}",
                "port": base_port + index,
                "hub_token": secrets.token_urlsafe(32),
                "agencies": [
                    {
                        "org_id": f"000.00.{group}.{root.root_code}",
                        "name": label.format(province=name),
                        "token": secrets.token_urlsafe(32),
                    }
                    for group, label in AGENCIES
                ],
            }
        )
    scheme = "https" if tls else "http"
    spec = {
        "hub": {
            "url": f"{scheme}://127.0.0.1:{base_port}",
            "port": base_port,
            "org_id": HUB_ORG_ID,
            "tls": tls,
        },
        "nodes": nodes,
    }
    network = Network(data_dir, spec)
    data_dir.mkdir(parents=True, exist_ok=True)
    network.save()
    return network


def provision(network: Network) -> None:
    """Create whatever certificates are missing (idempotent)."""
    keys = KeyStore(network.keys_dir)
    if not keys.exists():
        keys.init()
    wanted: list[tuple[str, dict[str, Any]]] = [
        (HUB_ORG_ID, {"org_name": "Văn phòng Chính phủ"}),
        (HUB_ORG_ID, {"tls_hosts": HOSTS}),
    ]
    for node in network.spec["nodes"]:
        wanted.append((f"000.00.00.{node['province']}", {"tls_hosts": HOSTS}))
        for agency in node["agencies"]:
            wanted.append((agency["org_id"], {"org_name": agency["name"]}))
        wanted.append(
            (f"000.00.00.{node['province']}", {"full_name": SIGNER.format(province=node["name"])})
        )
    for org_id, options in wanted:
        kind = "tls" if "tls_hosts" in options else None
        try:
            keys.identity(org_id, options.get("full_name", ""), pki.CertKind.TLS if kind else None)
        except errors.UnknownCertificate:
            keys.issue(org_id, **options)


def edoc_command() -> list[str]:
    return [sys.executable, "-m", "edoc"]


def register_tokens(network: Network) -> None:
    hub_dir = network.data_dir / "hub"
    for node in network.spec["nodes"]:
        subprocess.run(
            [
                *edoc_command(),
                "hub",
                "add-node",
                node["province"],
                "--data-dir",
                str(hub_dir),
                "--token",
                node["hub_token"],
            ],
            check=True,
            capture_output=True,
        )
        for agency in node["agencies"]:
            subprocess.run(
                [
                    *edoc_command(),
                    "agency",
                    "add",
                    agency["org_id"],
                    "--name",
                    agency["name"],
                    "--data-dir",
                    str(network.data_dir / "nodes" / node["province"]),
                    "--keys-dir",
                    str(network.keys_dir),
                    "--token",
                    agency["token"],
                ],
                check=True,
                capture_output=True,
            )


def commands(network: Network, node_args: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    hub = network.spec["hub"]
    keys = str(network.keys_dir)
    result = [
        (
            "hub",
            [
                *edoc_command(),
                "serve",
                "hub",
                "--data-dir",
                str(network.data_dir / "hub"),
                "--keys-dir",
                keys,
                "--port",
                str(hub["port"]),
                *([] if hub["tls"] else ["--insecure-http"]),
            ],
        )
    ]
    for node in network.spec["nodes"]:
        result.append(
            (
                f"node {node['province']}",
                [
                    *edoc_command(),
                    "serve",
                    "node",
                    "--province",
                    node["province"],
                    "--data-dir",
                    str(network.data_dir / "nodes" / node["province"]),
                    "--keys-dir",
                    keys,
                    "--port",
                    str(node["port"]),
                    "--hub",
                    hub["url"],
                    "--hub-token",
                    node["hub_token"],
                    *([] if hub["tls"] else ["--hub-insecure-http"]),
                ],
            )
        )
    return result


def wait_healthy(url: str, process: subprocess.Popen[bytes], context: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise errors.EdocError(f"{url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1, context=context):  # noqa: S310
                return
        except OSError:
            time.sleep(0.1)
    raise errors.EdocError(f"{url} did not become healthy in {timeout:.0f} s")


def start(
    network: Network, node_args: tuple[str, ...] = ()
) -> list[tuple[str, subprocess.Popen[bytes]]]:
    logs = network.data_dir / "logs"
    logs.mkdir(exist_ok=True)
    context = tls.admin_context(KeyStore(network.keys_dir))
    started: list[tuple[str, subprocess.Popen[bytes]]] = []
    urls = [network.spec["hub"]["url"], *(n["url"] for n in network.spec["nodes"])]
    try:
        for (name, command), url in zip(commands(network, node_args), urls, strict=True):
            started.append((name, launch(network, name, command, url, context)))
    except BaseException:
        stop(started)
        raise
    return started


def launch(
    network: Network, name: str, command: list[str], url: str, context: Any
) -> subprocess.Popen[bytes]:
    """Start one service, logging to DATA/logs/NAME.log, and wait until it answers."""
    logs = network.data_dir / "logs"
    with (logs / f"{name.replace(' ', '-')}.log").open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=log)
    wait_healthy(url, process, context if url.startswith("https") else None, 30)
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

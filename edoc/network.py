"""`edoc up`: a hub and one node per province as separate processes on this machine.

The first run creates the dev CA and every certificate, tokens for a few agencies per
province, and ``DATA/network.json``; later runs (also after a kill -9 of everything)
read that file back and bring up the same network: same keys, tokens and ports, with
every stored document still there and still on its way.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import functools
import hashlib
import json
import random
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from edoc import atomic, errors, tasks
from edoc.hub import app as hub_app
from edoc.hub.directory import SEEDS, known_root
from edoc.hub.state import HUB_ORG_ID, HubConfig
from edoc.keystore import KeyStore, Wanted
from edoc.node import app as node_app
from edoc.node.state import NodeConfig
from edoc.orgid import OrgId, parse_root_code
from edoc.store import check_url, sqlite_url, store_is_shared

PROVINCES = {"H53": "Tây Ninh", "H34": "Kon Tum", "H44": "Phú Thọ", "H12": "Cà Mau"}
AGENCIES = {  # (level-2 group, name, signer's position): the same few in every province
    "province": (
        ("00", "Ủy ban nhân dân tỉnh {name}", "Chủ tịch"),
        ("07", "Sở Nội vụ tỉnh {name}", "Giám đốc"),
        ("12", "Sở Thông tin và Truyền thông tỉnh {name}", "Giám đốc"),
        ("15", "Sở Tài chính tỉnh {name}", "Giám đốc"),
    ),
    "ministry": (
        ("00", "{name}", "Bộ trưởng"),
        ("01", "Văn phòng {name}", "Chánh Văn phòng"),
        ("02", "Vụ Kế hoạch - Tài chính, {name}", "Vụ trưởng"),
        ("03", "Vụ Tổ chức cán bộ, {name}", "Vụ trưởng"),
    ),
}
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi")
MIDDLE = ("Văn", "Thị", "Hữu", "Minh", "Quốc", "Thanh", "Ngọc", "Đức")
GIVEN = (
    "An",
    "Bình",
    "Cường",
    "Dũng",
    "Hà",
    "Hải",
    "Hương",
    "Lan",
    "Long",
    "Mai",
    "Nam",
    "Phúc",
    "Quang",
    "Sơn",
    "Tâm",
    "Thảo",
    "Trung",
    "Tuấn",
    "Vinh",
    "Yến",
)
HOSTS = ("localhost", "127.0.0.1")
HOLDER = "network (edoc up, edoc simulate)"  # what holds DATA_DIR/.lock while it runs
LOCK_NAME = "network.json.lock"  # what every writer of DATA_DIR/network.json holds (_changing)
HUB_TOKEN_VARIABLE = "EDOC_HUB_TOKEN"  # noqa: S105 - where `edoc serve node` reads its token


def roots() -> dict[str, tuple[str, str]]:
    """Root code → (short name, kind) for every province and ministry in the seeds."""
    with SEEDS.open(encoding="utf-8") as handle:
        return {
            OrgId.parse(row["org_id"]).root_code: (
                row["name"].removeprefix("UBND tỉnh ").removeprefix("UBND thành phố "),
                row["kind"],
            )
            for row in csv.DictReader(handle)
        }


def signer_name(org_id: str) -> str:
    """A stable, plausible Vietnamese name for the leader who signs for ``org_id``."""
    digest = hashlib.sha256(org_id.encode()).digest()
    return (
        f"{FAMILY[digest[0] % len(FAMILY)]} {MIDDLE[digest[1] % len(MIDDLE)]} "
        + GIVEN[digest[2] % len(GIVEN)]
    )


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
        text = json.dumps(self.spec, ensure_ascii=False, indent=2)
        atomic.write_bytes(self.path, text.encode(), mode=0o600)  # holds tokens


@dataclass(frozen=True)
class HubPlan:
    """How many hub instances run, sharing one address (SO_REUSEPORT), and their store
    (None: the SQLite file in the hub's folder, one instance only)."""

    instances: int = 1
    store: str | None = None

    def __post_init__(self) -> None:
        if self.store:  # before anything is provisioned or saved with it ("": the default)
            check_url(self.store)
        if self.instances > 1 and not (self.store and store_is_shared(self.store)):
            raise errors.InvalidField("several hub instances need a shared store: postgresql://")

    def spec(self) -> dict[str, Any]:
        return {"instances": self.instances, "store": self.store}


def hub_names(network: Network) -> list[str]:
    """The hub instances' service names: "hub", or "hub 1", "hub 2"…"""
    count = int(network.spec["hub"].get("instances", 1))
    return ["hub"] if count == 1 else [f"hub {n}" for n in range(1, count + 1)]


def random_base_port(step: int = 10) -> int:
    """A block of ``step`` free ports for a network started in the background (tests, the
    simulator, the benchmark). Below Linux's ephemeral range (32768 and up), where
    outgoing connections take their local ports and a restarted service could find its
    own port taken; probed, as other networks may run beside this one."""
    while True:
        base = random.randrange(20000, 32000, step)  # noqa: S311 - a port, not a secret
        try:
            for port in range(base, base + step):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base


# What the readers of a network.json take from it (`edoc up`, `edoc simulate --network`):
# a file without it is some other file, said as such before a reader fails on it
_SHAPE = {
    "type": "object",
    "required": ["hub", "nodes"],
    "properties": {
        "hub": {
            "type": "object",
            "required": ["url"],
            "properties": {  # what `edoc up` runs it by, when given (a hand edit's slips)
                "url": {"type": "string"},
                "port": {"type": "integer"},
                "tls": {"type": "boolean"},
                "instances": {"type": "integer", "minimum": 1},
                "store": {"type": ["string", "null"]},
            },
        },
        "nodes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["province", "name", "url", "agencies"],
                "properties": {
                    "province": {"type": "string"},
                    "url": {"type": "string"},
                    "port": {"type": "integer"},
                    "hub_token": {"type": "string"},
                    "agencies": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["org_id", "name", "token", "signer"],
                            "properties": {
                                "org_id": {"type": "string"},
                                "token": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}


def read(path: Path) -> dict[str, Any]:
    """The network ``path`` describes; a file that is no network.json (damaged, or another
    JSON file given for one) is refused naming it (EDOC-IN-000)."""
    try:
        spec: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:  # not JSON, or not UTF-8
        raise errors.InputError(f"{path} is not a network.json ({exc})") from None
    wrong = best_match(jsonschema.Draft202012Validator(_SHAPE).iter_errors(spec))
    if wrong is not None:
        raise errors.InputError(
            f"{path} is not a network.json (at {wrong.json_path}: {wrong.message})"
        )
    return spec


def planned(data_dir: Path) -> Network | None:
    """The network planned in ``data_dir`` before, as it was; None if none was."""
    path = data_dir / "network.json"
    if not path.exists():
        return None
    return Network(data_dir, read(path))


@contextlib.contextmanager
def _changing(data_dir: Path) -> Iterator[Network | None]:
    """The network planned in ``data_dir`` as it is now, read under the lock every writer
    of network.json holds while it changes and saves it: `edoc up` (plan, move) and the
    commands that give a token by hand (TokenEntry) each change a part of it and write
    the whole back; one that wrote what it had read before another's save undid that."""
    with atomic.one_writer(data_dir / LOCK_NAME):
        yield planned(data_dir)


def plan(
    data_dir: Path,
    provinces: list[str],
    base_port: int,
    tls: bool,
    agencies: int = 4,
    hubs: HubPlan | None = None,
) -> Network:
    """The network in ``data_dir``: read back if it exists, else laid out anew; ``hubs``
    (how many hub instances, on which store) replaces what was planned before."""
    data_dir.mkdir(parents=True, exist_ok=True)  # (its lock file is there)
    with _changing(data_dir) as network:
        if network is not None:
            _replan(network, hubs)
            return network
        network = Network(data_dir, _layout(provinces, base_port, tls, agencies, hubs))
        network.save()
        return network


def _replan(network: Network, hubs: HubPlan | None) -> None:
    """Give a network planned before ``hubs`` if asked for (else check the hub it plans),
    and the operator's credential if it was planned before dashboards; saved if changed."""
    if hubs is not None:
        network.spec["hub"].update(hubs.spec())
    else:
        _check_planned_hub(network)
    if hubs is not None or "operator" not in network.spec:  # planned before dashboards
        network.spec.setdefault("operator", _operator())
        network.save()


def _layout(
    provinces: list[str], base_port: int, tls: bool, agencies: int, hubs: HubPlan | None
) -> dict[str, Any]:
    """A new network's plan: its hub, a node per province with ``agencies`` agencies
    (a few of AGENCIES), their ports from ``base_port`` on, and new tokens."""
    known = roots()
    nodes = []
    for index, code in enumerate(provinces, start=1):
        root = known_root(code)
        name, kind = known[root.root_code]
        nodes.append(
            {
                "province": root.root_code,
                "name": name,
                "url": _url("http", base_port + index),
                "port": base_port + index,
                "hub_token": secrets.token_urlsafe(32),
                "agencies": [
                    {
                        "org_id": f"000.00.{group}.{root.root_code}",
                        "name": label.format(name=name),
                        "token": secrets.token_urlsafe(32),
                        "signer": {
                            "full_name": signer_name(f"000.00.{group}.{root.root_code}"),
                            "position": position,
                        },
                    }
                    for group, label, position in AGENCIES.get(kind, AGENCIES["province"])[
                        :agencies
                    ]
                ],
            }
        )
    scheme = "https" if tls else "http"
    return {
        "hub": {
            "url": _url(scheme, base_port),
            "port": base_port,
            "org_id": HUB_ORG_ID,
            "tls": tls,
            **(hubs or HubPlan()).spec(),
        },
        "nodes": nodes,
        "operator": _operator(),
    }


def _check_planned_hub(network: Network) -> None:
    """Refuse the hub network.json plans if edoc cannot run it, saying where it came from
    and how to replace it: an older edoc saved any --store URL, and the error, said as
    the hub's alone, sent the operator looking for a --store never given this time."""
    hub = network.spec["hub"]
    try:
        HubPlan(int(hub.get("instances", 1)), hub.get("store"))
    except errors.EdocError as exc:
        raise type(exc)(
            f"{network.path} plans a hub edoc cannot run: {exc.message}. An older edoc saved"
            " it there; `edoc up --store URL` replaces it (with --hubs N, for instances)"
        ) from None


# --- tokens the operator gives by hand (`edoc hub add-node`, `edoc agency add`) -----------
# network.json is the one place a network's tokens are kept in the clear (the stores keep
# their SHA-256 only), and `edoc up` gives the stores its tokens again at every start
# (register_tokens), a node its hub token too. A token given by hand to a service of the
# network is written there as well: left out, the next start put the old one back in the
# store, locking out whoever had been given the new one, and network.json told agencies'
# software and `edoc simulate --network` a token the store no longer held.


@dataclass(frozen=True)
class TokenEntry:
    """Where network.json (at ``path``) keeps one holder's token: ``field`` of the entry
    that ``find`` picks out of the network's spec."""

    path: Path
    find: Callable[[dict[str, Any]], dict[str, Any] | None]
    field: str

    def record(self, token: str) -> bool:
        """Write ``token`` (the one the store now holds) into network.json, read again
        under its lock: another command, or `edoc up`, may have saved it since this entry
        was found. Whether it told another token before. Raises OSError, or InputError
        for a file damaged meanwhile, when it cannot be written."""
        with _changing(self.path.parent) as network:
            entry = None if network is None else self.find(network.spec)
            if network is None or entry is None or entry[self.field] == token:
                return False  # (gone meanwhile: no file tells an old token)
            entry[self.field] = token
            network.save()
            return True


def _node_entry(root: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """The node of province ``root`` in a network's spec."""
    return next((node for node in spec["nodes"] if node["province"] == root), None)


def _agency_entry(root: str, org_id: str, spec: dict[str, Any]) -> dict[str, Any] | None:
    """Agency ``org_id`` of the node of province ``root`` in a network's spec."""
    node = _node_entry(root, spec)
    agencies = node["agencies"] if node is not None else []
    return next((agency for agency in agencies if agency["org_id"] == org_id), None)


def node_token_entry(hub_dir: Path, store_url: str | None, root: str) -> TokenEntry | None:
    """Where network.json keeps the hub token of node ``root``, if the hub in ``hub_dir``
    (on ``store_url``) is an `edoc up` network's (DATA/hub, on the store network.json
    plans) with a node for ``root``; else None. Asked before the store changes: a
    damaged network.json is refused (EDOC-IN-000) with the token not yet given."""
    hub_dir = hub_dir.resolve()
    network = planned(hub_dir.parent) if hub_dir.name == "hub" else None
    if network is None:
        return None
    planned_store = HubConfig(hub_dir, Path(), store_url=network.spec["hub"].get("store")).store
    if HubConfig(hub_dir, Path(), store_url=store_url).store != planned_store:
        return None  # another hub's store, kept in the network's folder
    find = functools.partial(_node_entry, root)
    return TokenEntry(network.path, find, "hub_token") if find(network.spec) else None


def agency_token_entry(node_dir: Path, store_url: str | None, org_id: str) -> TokenEntry | None:
    """Where network.json keeps agency ``org_id``'s token, if the node in ``node_dir`` (on
    ``store_url``) is an `edoc up` network's (DATA/nodes/ROOT, on its SQLite file) and
    network.json lists the agency; else None. Asked before the store changes."""
    node_dir = node_dir.resolve()
    nodes = node_dir.parent
    network = planned(nodes.parent) if nodes.name == "nodes" else None
    if network is None:
        return None
    if store_url not in (None, sqlite_url(node_dir / "node.sqlite")):
        return None  # another store than the one `edoc up` gives the node
    find = functools.partial(_agency_entry, node_dir.name, org_id)
    return TokenEntry(network.path, find, "token") if find(network.spec) else None


def _url(scheme: str, port: int) -> str:
    return f"{scheme}://127.0.0.1:{port}"


def keep_provinces(network: Network, asked: list[str]) -> None:
    """Refuse ``asked`` unless it names the provinces the network was planned with (in any
    order): their nodes' stores, tokens and documents are in its folder, and one left
    out would strand its documents there (what a new network is for, in another folder)."""
    kept = [node["province"] for node in network.spec["nodes"]]
    if sorted(parse_root_code(code).root_code for code in asked) != sorted(kept):
        raise errors.InputError(
            f"{network.path} has a node for {','.join(kept)}, not {','.join(asked)}: a"
            " network keeps its provinces; start it without --provinces, or give another"
            " --data-dir for a network of other provinces"
        )


def keep_tls(network: Network, tls: bool) -> None:
    """Refuse ``tls`` unless the network was planned with it: its hub's address (https://
    or http://) is in network.json, where agencies' software and `edoc simulate --network`
    read it, and the nodes reach the hub with their client certificates or without; a
    network changes its transport no more than its provinces."""
    planned = bool(network.spec["hub"]["tls"])
    if tls != planned:
        has, asked = ("TLS", "plain HTTP") if planned else ("plain HTTP", "TLS")
        flag = "without --insecure-http" if planned else "with --insecure-http"
        raise errors.InputError(
            f"{network.path} has a hub with {has}, not {asked}: a network keeps its"
            f" transport; start it {flag}, or give another --data-dir for a network"
            f" with {asked}"
        )


def move(network: Network, base_port: int) -> None:
    """Put the hub on ``base_port`` and the nodes on the ports after it, as a new plan
    lays them out, and save the plan. Only network.json holds the ports (the
    certificates name hosts, the stores no address), so a network whose port another
    program took can move away from it. ``network`` becomes network.json as saved: read
    again under its lock, with what another process saved since ``network`` was read
    (a token given by hand)."""
    with _changing(network.data_dir) as now:
        network.spec = (now or network).spec
        hub = network.spec["hub"]
        if hub["port"] == base_port:
            return
        hub.update(port=base_port, url=_url("https" if hub["tls"] else "http", base_port))
        for index, node in enumerate(network.spec["nodes"], start=1):
            node.update(port=base_port + index, url=_url("http", base_port + index))
        network.save()


def _operator() -> dict[str, str]:
    """The operator's credential for the dashboards (not an agency's or a node's token)."""
    return {"token": secrets.token_urlsafe(32)}


def dashboards(network: Network) -> list[tuple[str, str]]:
    """(service, address) of every dashboard: the hub's national view, each node's."""
    found = [("hub", f"{network.spec['hub']['url']}/dashboard/")]
    return found + [
        (f"node {n['province']}", f"{n['url']}/dashboard/") for n in network.spec["nodes"]
    ]


def provision(network: Network) -> None:
    """Create whatever certificates are missing (idempotent), all in one issue."""
    keys = KeyStore(network.keys_dir)
    if not keys.exists():
        keys.init()
    wanted = [
        Wanted.of(HUB_ORG_ID, org_name="Văn phòng Chính phủ"),
        Wanted.of(HUB_ORG_ID, tls_hosts=HOSTS),
    ]
    for node in network.spec["nodes"]:
        wanted.append(Wanted.of(str(parse_root_code(node["province"])), tls_hosts=HOSTS))
        for agency in node["agencies"]:
            wanted.append(Wanted.of(agency["org_id"], org_name=agency["name"]))
            wanted.append(Wanted.of(agency["org_id"], full_name=agency["signer"]["full_name"]))
    wanted.append(Wanted.tsa())  # the time-stamping authority of the archive (edoc.archive.tsa)
    keys.issue_many([one for one in wanted if not _issued(keys, one)])


def _issued(keys: KeyStore, wanted: Wanted) -> bool:
    """Whether ``keys`` holds a valid certificate of what ``wanted`` asks for."""
    try:
        keys.current(wanted.org_id, wanted.full_name, wanted.kind)
    except errors.UnknownCertificate:
        return False
    return True


def edoc_command() -> list[str]:
    return [sys.executable, "-m", "edoc"]


REGISTERING = 16  # stores opened at a time by register_tokens


def register_tokens(network: Network) -> None:
    """Give the hub each node's token and each node its agencies' tokens (idempotent).
    The nodes' stores at once, REGISTERING at a time: each is a few SQLite commits, and
    waiting on each one's fsync in turn made most of a national network's registration."""
    nodes = network.spec["nodes"]

    async def register() -> None:
        hub = HubConfig(
            data_dir=network.data_dir / "hub",
            keys_dir=network.keys_dir,
            store_url=network.spec["hub"].get("store"),
        )
        opening = asyncio.Semaphore(REGISTERING)

        async def agencies(node: dict[str, Any]) -> None:
            config = NodeConfig(
                node["province"],
                network.data_dir / "nodes" / node["province"],
                network.keys_dir,
                hub_url="",
                hub_token="",
            )
            given = [(a["org_id"], a["name"], a["token"]) for a in node["agencies"]]
            async with opening:
                await node_app.add_agencies(config, given)

        await tasks.together(
            hub_app.add_nodes(hub, {node["province"]: node["hub_token"] for node in nodes}),
            *(agencies(node) for node in nodes),
        )

    asyncio.run(register())


def commands(network: Network, node_args: tuple[str, ...] = ()) -> list[tuple[str, list[str]]]:
    hub = network.spec["hub"]
    keys = str(network.keys_dir)
    store = ["--store", hub["store"]] if hub.get("store") else []
    result = [
        (
            name,  # instances share the data folder: the packages in it, and the port
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
                *store,
                *([] if hub["tls"] else ["--insecure-http"]),
            ],
        )
        for name in hub_names(network)
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
                    *([] if hub["tls"] else ["--hub-insecure-http"]),
                    # the caller's extra node flags (tests pass fast retries); they were
                    # accepted but dropped, so test nodes ran with the 1 s..60 s defaults
                    *node_args,
                ],
            )
        )
    return result

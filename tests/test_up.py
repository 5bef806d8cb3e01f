"""`edoc up` as a user runs it: start, send with `edoc send`, Ctrl-C, resume, kill -9, resume."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edoc import network
from tests.support.network import Agency, eventually

EDOC = str(Path(sys.executable).parent / "edoc")
SAMPLE = Path(__file__).resolve().parent.parent / "seeds" / "samples"
PROVINCES = ("--provinces", "H53,H23")


def _up(data: Path, port: int, ignoring_sigint: bool = False) -> subprocess.Popen[str]:
    """`edoc up` in its own process group; ``ignoring_sigint`` as a script's ``edoc up &``
    starts it (a non-interactive shell sets SIGINT to SIG_IGN, and exec keeps that)."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if ignoring_sigint else None
    try:
        process = subprocess.Popen(
            [EDOC, "up", "--data-dir", str(data), "--base-port", str(port), *PROVINCES],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "Ctrl-C" in line:
            return process
        if not line and process.poll() is not None:
            _, errors = process.communicate()  # and closes the pipes
            raise AssertionError(errors or "up exited")
    _finish(process, signal.SIGKILL)
    raise AssertionError("edoc up did not start")


def _finish(process: subprocess.Popen[str], sig: int | None = signal.SIGINT) -> tuple[int, str]:
    """Signal the whole process group, as Ctrl-C in a terminal does; the exit code and
    what up wrote to stderr."""
    if sig is not None:
        os.killpg(process.pid, sig)
    try:
        _, errors = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # up and its services: no stray network
        _, errors = process.communicate()
        raise AssertionError(f"edoc up did not stop: {errors}") from None
    return process.returncode, errors


def _services(data: Path, commands: tuple[bytes, ...] = (b"serve",)) -> dict[int, bytes]:
    """The hub and node processes serving ``data``: pid → command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        words = command.split(b"\0")
        if any(word in words for word in commands) and str(data).encode() in command:
            found[int(entry.name)] = command
    return found


@pytest.fixture(autouse=True)
def no_stray_network(tmp_path: Path) -> Iterator[None]:
    """Whatever a test ends with, no `edoc up` or service of its is left running."""
    yield
    for pid in _services(tmp_path, (b"up", b"serve")):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _tokens(data: Path) -> list[str]:
    spec = json.loads((data / "network.json").read_text())
    return [node["hub_token"] for node in spec["nodes"]] + [
        agency["token"] for node in spec["nodes"] for agency in node["agencies"]
    ]


async def test_up_send_stop_resume(tmp_path: Path) -> None:
    data, port = tmp_path / "data", network.random_base_port()
    up = _up(data, port, ignoring_sigint=True)  # a script's `edoc up &`
    spec = json.loads((data / "network.json").read_text())
    assert [n["province"] for n in spec["nodes"]] == ["H53", "H23"]
    assert spec["hub"]["url"].startswith("https://")
    running = _services(data)
    assert len(running) == 3
    for command in running.values():  # `ps` shows every user the command lines
        assert not [token for token in _tokens(data) if token.encode() in command]
    sender = spec["nodes"][0]["agencies"][2]  # Sở Thông tin và Truyền thông tỉnh Tây Ninh
    metadata = json.loads((SAMPLE / "cong-van.json").read_text())
    metadata["from"] = sender["org_id"]
    metadata["to"] = ["000.00.00.H23", "000.00.07.H53"]
    (tmp_path / "m.json").write_text(json.dumps(metadata, ensure_ascii=False))
    sent = subprocess.run(
        [
            EDOC,
            "send",
            "--node",
            spec["nodes"][0]["url"],
            "--token",
            sender["token"],
            str(tmp_path / "m.json"),
            str(SAMPLE / "ke-hoach.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    document_id = json.loads(sent.stdout)["document_id"]
    receiver = spec["nodes"][1]["agencies"][0]
    inbox = Agency(spec["nodes"][1]["url"], receiver["token"], receiver["org_id"])

    async def arrived() -> bool:
        return any(d["document_id"] == document_id for d in await inbox.inbox())

    await eventually(arrived)

    # SIGINT to the group, which up inherited as ignored and its services did not
    assert _finish(up, signal.SIGINT) == (0, "")
    assert _services(data) == {}  # its children stopped with it
    for log in (data / "logs").iterdir():  # and cleanly: the hub's used to hold tracebacks
        assert "Traceback" not in log.read_text(), log

    up = _up(data, port)  # resumes: same tokens, documents still there
    assert json.loads((data / "network.json").read_text()) == spec
    assert await arrived()
    os.killpg(up.pid, signal.SIGKILL)  # kill -9 of everything
    for pid in _services(data):
        os.kill(pid, signal.SIGKILL)
    _finish(up, None)
    time.sleep(0.5)

    up = _up(data, port)
    try:
        assert await arrived()
    finally:
        assert _finish(up, signal.SIGTERM) == (0, "")
    assert _services(data) == {}


def _ca_made(data: Path) -> bool:
    return (data / "keys" / "index.json").exists()  # the network's certificates are being issued


def _two_services(data: Path) -> bool:
    return len(_services(data)) >= 2  # the hub and some node are starting


@pytest.mark.parametrize(
    ("reached", "sig"),
    [(_ca_made, signal.SIGTERM), (_two_services, signal.SIGINT)],
    ids=["provisioning", "starting"],
)
def test_a_stop_while_starting_stops_everything(
    tmp_path: Path, reached: Callable[[Path], bool], sig: int
) -> None:
    data = tmp_path / "data"
    up = subprocess.Popen(
        [
            EDOC,
            "up",
            "--data-dir",
            str(data),
            "--base-port",
            str(network.random_base_port()),
            *PROVINCES,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not reached(data) and up.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert up.poll() is None, up.communicate()[1]
    assert _finish(up, sig) == (0, "")
    assert _services(data) == {}


def _gone(data: Path, within: float) -> bool:
    """Whether no service of ``data`` runs, within ``within`` seconds (a stop of theirs
    takes up to web.serve's shutdown_timeout)."""
    deadline = time.monotonic() + within
    while _services(data) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _services(data) == {}


def test_the_services_end_with_an_up_killed_outright(tmp_path: Path) -> None:
    """Killed with SIGKILL, `edoc up` stopped nothing: its services ran on, its lock on
    the folder gone with it, and a later `edoc up` found their ports taken (or ran a
    second hub on the same stores)."""
    data, port = tmp_path / "data", network.random_base_port()
    up = _up(data, port)
    assert len(_services(data)) == 3
    os.kill(up.pid, signal.SIGKILL)  # up alone, not its process group
    _finish(up, None)
    assert _gone(data, within=15), _services(data)
    up = _up(data, port)  # on the same ports, nothing in its way
    assert _finish(up, signal.SIGTERM) == (0, "")

"""`edoc up` as a user runs it: start, send with `edoc send`, Ctrl-C, resume, kill -9, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edoc import network
from tests.network_support import Agency, eventually

EDOC = str(Path(sys.executable).parent / "edoc")
SAMPLE = Path(__file__).resolve().parent.parent / "seeds" / "samples"


def _up(data: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [EDOC, "up", "--data-dir", str(data), "--base-port", str(port), "--provinces", "H53,H23"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if "Ctrl-C" in line:
            return process
        if not line and process.poll() is not None:
            _, errors = process.communicate()  # and closes the pipes
            raise AssertionError(errors or "up exited")
    _finish(process, signal.SIGKILL)
    raise AssertionError("edoc up did not start")


def _finish(process: subprocess.Popen[str], sig: int | None = signal.SIGINT) -> int:
    if sig is not None:
        process.send_signal(sig)
    code = process.wait(timeout=30)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    return code


def _services(data: Path) -> list[int]:
    """Pids of the hub and node processes serving ``data``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in command and any(str(data).encode() in part for part in command):
            found.append(int(entry.name))
    return found


async def test_up_send_stop_resume(tmp_path: Path) -> None:
    data, port = tmp_path / "data", network.random_base_port()
    up = _up(data, port)
    spec = json.loads((data / "network.json").read_text())
    assert [n["province"] for n in spec["nodes"]] == ["H53", "H23"]
    assert spec["hub"]["url"].startswith("https://")
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

    assert _finish(up) == 0  # Ctrl-C
    assert _services(data) == []  # its children stopped with it

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
        _finish(up)

"""`make demo` works in a folder of its own, never in a running network's keys."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from edoc.keystore import KeyStore

REPO = Path(__file__).resolve().parent.parent


def _demo_commands(data: Path) -> list[str]:
    """The edoc commands `make demo DATA=data` runs (as `make -n` prints them)."""
    make = shutil.which("make")
    if make is None:
        pytest.skip("no make")
    printed = subprocess.run(
        [make, "-n", "demo", f"DATA={data}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.replace("\\\n", " ")
    return [line for line in printed.splitlines() if line.startswith(".venv/bin/edoc ")]


def test_demo_uses_its_own_folder(tmp_path: Path) -> None:
    data = tmp_path / "data"
    commands = _demo_commands(data)
    assert len(commands) >= 5
    for command in commands:
        words = shlex.split(command)
        for option in ("--data-dir", "--keys-dir", "-o"):
            if option in words:
                value = Path(words[words.index(option) + 1])
                assert value.is_relative_to(data / "demo"), command
        assert str(data / "keys") not in command, command


def test_demo_runs_beside_a_network_without_touching_its_keys(tmp_path: Path) -> None:
    data = tmp_path / "data"
    network_keys = KeyStore(data / "keys")
    network_keys.init()
    index_before = network_keys.index_path.read_bytes()
    for command in _demo_commands(data):
        done = subprocess.run(command, shell=True, cwd=REPO, capture_output=True, text=True)  # noqa: S602
        assert done.returncode == 0, (command, done.stderr)
    assert network_keys.index_path.read_bytes() == index_before
    assert KeyStore(data / "demo" / "keys").exists()
    assert (data / "demo" / "cong-van.edxml").exists()

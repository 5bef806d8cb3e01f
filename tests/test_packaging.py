"""A wheel installed outside the checkout works: it carries its schemas and seeds.

The wheel is built from a copy of the sources, installed into a fresh venv, and the
venv's own ``edoc`` packs, verifies and inspects a document from a folder that is not
the checkout. Third-party packages come from the dev venv (nothing is downloaded for
them), but ``edoc`` itself must be the installed wheel's.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "edoc", "schemas", "seeds")
SAMPLES = ROOT / "seeds" / "samples"
SENDER = "000.00.12.H53"
SIGNER = "Nguyễn Văn A"


def _run(*args: str | Path, cwd: Path | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [str(arg) for arg in args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        cwd=cwd,
        env=env | {"PYTHONWARNINGS": "error"},
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: a build in the checkout leaves build/ behind, and a stale
    # build/lib would slip modules deleted since into the next wheel.
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheels")
    _run(sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, source)
    (built,) = out.glob("edoc-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel; returns its bin folder."""
    home = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", "--without-pip", home)
    python = home / "bin" / "python"
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        wheel,
    )
    # Only now the dev venv's packages: pip would have taken the editable edoc they
    # list for the one to install. Appended after the venv's own site-packages, so
    # `import edoc` finds the wheel's first.
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"))
    (Path(str(site).strip()) / "dev-packages.pth").write_text(
        sysconfig.get_path("purelib") + "\n", encoding="utf-8"
    )
    return home / "bin"


def _package_files(root: Path, prefix: str) -> set[str]:
    return {
        f"{prefix}/{path.relative_to(root).as_posix()}"
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
    }


def test_the_wheel_holds_every_module_schema_and_seed(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        shipped = {name for name in archive.namelist() if name.startswith("edoc/")}
    expected = (
        {name for name in _package_files(ROOT / "edoc", "edoc") if name.endswith(".py")}
        | _package_files(ROOT / "schemas", "edoc/schemas")
        | _package_files(ROOT / "seeds", "edoc/seeds")
    )
    # a package missing from pyproject.toml's list is left out of the wheel silently
    assert expected - shipped == set()
    assert "edoc/py.typed" in shipped


def test_edoc_is_the_installed_wheel_and_finds_its_data(venv: Path, tmp_path: Path) -> None:
    probe = (
        "import edoc, json\n"
        "from edoc import resources\n"
        "from edoc.hub import directory\n"
        "from edoc.sim import profile\n"
        "print(json.dumps({'edoc': edoc.__file__, 'xsd': str(resources.schema('edxml.xsd')),\n"
        "    'seeds': len(directory.seed_entries()), 'profile': profile.load('national').name}))\n"
    )
    found: dict[str, Any] = json.loads(_run(venv / "python", "-c", probe, cwd=tmp_path))
    home = venv.parent.resolve()
    assert Path(found["edoc"]).resolve().is_relative_to(home), found
    assert Path(found["xsd"]).resolve().is_relative_to(home), found
    assert found["seeds"] > 60
    assert found["profile"] == "national"


def test_the_installed_command_packs_verifies_and_inspects(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "elsewhere"
    work.mkdir()
    for sample in ("cong-van.json", "ke-hoach.txt"):
        shutil.copy2(SAMPLES / sample, work / sample)
    edoc = venv / "edoc"
    keys = ("--keys-dir", "keys")
    _run(edoc, "keys", "init", *keys, cwd=work)
    _run(
        edoc,
        "keys",
        "issue",
        SENDER,
        "--name",
        "Sở Thông tin và Truyền thông tỉnh Tây Ninh",
        *keys,
        cwd=work,
    )
    _run(edoc, "keys", "issue", SENDER, "--personal", SIGNER, *keys, cwd=work)
    _run(
        edoc,
        "pack",
        "cong-van.json",
        "ke-hoach.txt",
        "-o",
        "out.edxml",
        "--sign-as",
        SENDER,
        "--signer-cert",
        SIGNER,
        *keys,
        cwd=work,
    )

    verified = json.loads(_run(edoc, "verify", "out.edxml", *keys, "--json", cwd=work))
    assert [signer["kind"] for signer in verified["signers"]] == ["organization", "personal"]
    assert verified["document_id"].startswith(f"{SENDER},")

    inspected = json.loads(_run(edoc, "inspect", "--json", "out.edxml", cwd=work))
    assert inspected["document_id"] == verified["document_id"]
    (attachment,) = inspected["attachments"]
    plan = (SAMPLES / "ke-hoach.txt").read_bytes()
    assert (attachment["name"], attachment["size"]) == ("ke-hoach.txt", len(plan))
    assert attachment["sha256"] == hashlib.sha256(plan).hexdigest()

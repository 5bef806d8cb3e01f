"""Where the CLI looks for keys when none is named: the network's data directory
(`--data-dir`, `$EDOC_DATA_DIR`, default `data`, as `make run` starts it)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from edoc.cli import main, serve
from edoc.keystore import KeyStore
from tests.support.pki import SAMPLE, SENDER


def _edoc(*args: str | Path, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=False)


def _ca(keys_dir: Path) -> None:
    keys = KeyStore(keys_dir)
    keys.init()
    keys.issue(SENDER, org_name="Sở TTTT Tây Ninh")


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EDOC_DATA_DIR", raising=False)
    return tmp_path


def test_after_make_run_the_keys_are_found_without_options(in_tmp: Path) -> None:
    _ca(in_tmp / "data" / "keys")  # where `edoc up --data-dir data` keeps them
    listed = _edoc("keys", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [row["org_id"] for row in json.loads(listed.stdout)] == [SENDER]
    packed = _edoc("pack", SAMPLE, "-o", "signed.edxml", "--sign-as", SENDER)
    assert packed.exit_code == 0, packed.stderr
    verified = _edoc("verify", "signed.edxml", "--json")
    assert verified.exit_code == 0, verified.stderr
    assert json.loads(verified.stdout)["signers"][0]["org_id"] == SENDER


def test_the_data_dir_comes_from_the_option_or_the_environment(in_tmp: Path) -> None:
    _ca(in_tmp / "elsewhere" / "keys")
    by_option = _edoc("keys", "list", "--json", "--data-dir", in_tmp / "elsewhere")
    assert by_option.exit_code == 0, by_option.stderr
    by_env = _edoc("keys", "list", "--json", env={"EDOC_DATA_DIR": str(in_tmp / "elsewhere")})
    assert by_env.exit_code == 0, by_env.stderr
    assert by_env.stdout == by_option.stdout
    assert _edoc("keys", "list").exit_code != 0  # data/keys is empty here


def test_keys_dir_still_wins(in_tmp: Path) -> None:
    _ca(in_tmp / "mine")
    listed = _edoc("keys", "list", "--keys-dir", in_tmp / "mine", "--data-dir", in_tmp / "nowhere")
    assert listed.exit_code == 0, listed.stderr


def test_keys_init_makes_the_ca_in_the_data_dir(in_tmp: Path) -> None:
    assert _edoc("keys", "init").exit_code == 0
    assert KeyStore(in_tmp / "data" / "keys").exists()
    assert not (in_tmp / "keys").exists()


def test_no_keys_names_the_folder_and_how_to_point_at_one(in_tmp: Path) -> None:
    """It exited 3, a fault of edoc, where the CLI's rule says a missing file exits 1."""
    result = _edoc("keys", "list")
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"error EDOC-KEY-001: no CA in {Path('data') / 'keys'}: "), line
    assert "--data-dir" in line and "EDOC_DATA_DIR" in line


def test_stats_over_https_without_keys_names_the_folder(in_tmp: Path) -> None:
    """It said `EDOC-IN-002: [Errno 2] No such file or directory`, naming no file."""
    result = _edoc("stats", "--hub", "https://127.0.0.1:9")
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("error EDOC-KEY-001: no CA in data"), line


def test_services_take_their_keys_from_the_network_dir(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`serve`'s --data-dir is the service's own folder; its keys are the network's."""

    def defaults() -> list[object]:
        found = []
        for command in serve.serve.commands.values():
            (keys_dir,) = (p for p in command.params if p.name == "keys_dir")
            found.append(keys_dir.get_default(click.Context(command), call=True))
        return found

    assert defaults() == [Path("data") / "keys"] * 2
    monkeypatch.setenv("EDOC_DATA_DIR", str(in_tmp / "net"))
    assert defaults() == [in_tmp / "net" / "keys"] * 2


@pytest.mark.parametrize(
    "command",
    [
        ("serve", "hub", "--data-dir", "service", "--port", "9"),
        ("serve", "node", "--province", "H53", "--data-dir", "service", "--hub", "http://h:9"),
        ("agency", "add", "000.00.07.H53", "--data-dir", "service"),
    ],
    ids=["serve hub", "serve node", "agency add"],
)
def test_a_service_without_keys_names_the_key_store_and_makes_nothing(
    in_tmp: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """It said `EDOC-IN-002: a file or folder (the system did not say which)`, and a node
    had made its store first."""
    monkeypatch.setenv("EDOC_HUB_TOKEN", "t")
    given = _edoc(*command, "--keys-dir", in_tmp / "nokeys")
    (line,) = given.stderr.splitlines()
    assert line.startswith(f"error EDOC-KEY-001: no CA in {in_tmp / 'nokeys'}: "), line
    assert "--keys-dir" in line and "EDOC_DATA_DIR" in line
    monkeypatch.setenv("EDOC_DATA_DIR", str(in_tmp / "wrong"))  # a wrong network folder
    by_default = _edoc(*command)
    (line,) = by_default.stderr.splitlines()
    assert f"no CA in {in_tmp / 'wrong' / 'keys'} ($EDOC_DATA_DIR/keys): " in line, line
    assert given.exit_code == by_default.exit_code == 1  # as the keys commands' EDOC-KEY-001
    assert sorted(in_tmp.iterdir()) == []  # no store, no service folder, no key folder

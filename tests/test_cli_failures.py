"""The one place that turns a failure into `error CODE: message` and an exit code: the
operating system's refusals are told apart, and each names its path or address."""

from __future__ import annotations

import asyncio
import errno
import socket
from pathlib import Path

import click
import pytest
import structlog
from click.testing import CliRunner, Result

from edoc import errors
from edoc.cli import main
from edoc.cli.failures import DEBUG_VARIABLE, EXIT_FAULT, EXIT_REFUSED, EXIT_SYSTEM, EdocGroup
from edoc.cli.options import ServiceUrl


def _raising(exc: BaseException) -> EdocGroup:
    group = EdocGroup()

    @group.command()
    def fails() -> None:
        raise exc

    return group


def _run(group: click.Group, *args: str) -> Result:
    return CliRunner().invoke(group, list(args), catch_exceptions=False)


def _one_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_missing_file_names_its_path_and_is_refused_input(tmp_path: Path) -> None:
    missing = tmp_path / "công-văn.json"
    result = _run(main, "pack", str(missing), "-o", str(tmp_path / "out.edxml"))
    assert result.exit_code == EXIT_REFUSED
    line = _one_line(result)
    assert line.startswith("error EDOC-IN-002: "), line
    assert str(missing) in line and "no such file" in line and "check the path" in line


def test_permission_denied_has_its_own_code_and_exit() -> None:
    denied = PermissionError(errno.EACCES, "Permission denied", "/srv/edoc/keys/index.json")
    result = _run(_raising(denied), "fails")
    assert result.exit_code == EXIT_SYSTEM
    line = _one_line(result)
    assert line.startswith("error EDOC-SYS-002: /srv/edoc/keys/index.json: permission denied")
    assert "give this user access" in line


async def _bind_error(port: int) -> OSError:
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", port)
    except OSError as exc:
        return exc
    server.close()
    raise AssertionError("the port was free")


def test_an_address_in_use_is_not_a_missing_file() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        in_use = asyncio.run(_bind_error(port))  # what a service's start-up raises
    assert in_use.errno == errno.EADDRINUSE
    result = _run(_raising(in_use), "fails")
    assert result.exit_code == EXIT_SYSTEM
    line = _one_line(result)
    assert line.startswith("error EDOC-SYS-003: "), line
    assert f"127.0.0.1', {port}" in line and "address already in use" in line
    assert "--port" in line


def test_an_error_without_a_path_says_so() -> None:
    result = _run(_raising(FileNotFoundError(errno.ENOENT, "No such file or directory")), "fails")
    line = _one_line(result)
    assert line.startswith("error EDOC-IN-002: a file or folder (the system did not say which)")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.SchemaViolation("bad"), EXIT_REFUSED),
        (errors.KeyStoreMissing("no CA in keys"), EXIT_REFUSED),  # a missing file: the CA
        (errors.KeyStoreError("keys/index.json is damaged"), EXIT_REFUSED),  # to restore
        (errors.DamagedKey("keys/certs/01.key: the private key of …"), EXIT_REFUSED),
        (errors.StorageError("disk full"), EXIT_FAULT),
        (OSError(errno.EIO, "Input/output error", "/dev/sdz"), EXIT_SYSTEM),
    ],
)
def test_exit_codes(error: Exception, code: int) -> None:
    assert _run(_raising(error), "fails").exit_code == code


@pytest.fixture
def no_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """A command's process, not a service's: no log configured (edoc.logs)."""
    monkeypatch.setattr(structlog, "is_configured", lambda: False)
    monkeypatch.delenv(DEBUG_VARIABLE, raising=False)


@pytest.mark.usefixtures("no_log")
def test_a_fault_edoc_did_not_translate_is_one_line_and_exit_3() -> None:
    """A KeyError out of a command printed Python's traceback and exited 1 (refused
    input): the README's one line, EDOC-000, a fault of edoc."""
    result = _run(_raising(KeyError("nodes")), "fails")
    assert result.exit_code == EXIT_FAULT
    assert _one_line(result) == (
        "error EDOC-000: an unexpected fault of edoc (KeyError: 'nodes');"
        f" {DEBUG_VARIABLE}=1 shows its traceback"
    )


@pytest.mark.usefixtures("no_log")
def test_a_faults_traceback_is_on_stderr_when_debugging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEBUG_VARIABLE, "1")
    result = _run(_raising(ValueError("a\nb")), "fails")
    assert result.exit_code == EXIT_FAULT
    *traceback, last = result.stderr.splitlines()
    assert traceback[0] == "Traceback (most recent call last):"
    assert "in fails" in result.stderr  # where it was raised
    assert last == "error EDOC-000: an unexpected fault of edoc (ValueError: a b)"


def test_a_services_fault_leaves_its_traceback_in_its_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(structlog, "is_configured", lambda: True)
    with structlog.testing.capture_logs() as logged:
        result = _run(_raising(RuntimeError("boom")), "fails")
    assert result.exit_code == EXIT_FAULT
    assert _one_line(result) == (
        "error EDOC-000: an unexpected fault of edoc (RuntimeError: boom); its traceback is logged"
    )
    [entry] = logged
    assert entry["event"] == "unexpected fault" and isinstance(entry["exc_info"], RuntimeError)


@pytest.mark.parametrize(
    ("ending", "code"),
    [(click.UsageError("no"), 2), (click.Abort(), 1), (click.exceptions.Exit(0), 0)],
)
def test_clicks_own_endings_are_still_clicks(ending: Exception, code: int) -> None:
    result = CliRunner().invoke(_raising(ending), ["fails"])
    assert result.exit_code == code
    assert "EDOC-000" not in result.output


def _every_command(group: click.Group, ctx: click.Context) -> list[click.Command]:
    found: list[click.Command] = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        found += [command]
        if isinstance(command, click.Group):
            found += _every_command(command, click.Context(command, parent=ctx))
    return found


def test_every_option_naming_a_service_takes_its_url_with_the_one_type() -> None:
    """--hub, --node: a hub's or a node's address, checked in one place (not copies)."""
    services = {
        (command.name, param.name): param.type
        for command in _every_command(main, click.Context(main))
        for param in command.params
        if param.name in ("hub_url", "node_url")
    }
    assert set(services) == {  # stats --hub and --node, send --node, serve node --hub
        ("stats", "hub_url"),
        ("stats", "node_url"),
        ("send", "node_url"),
        ("node", "hub_url"),
    }
    assert all(isinstance(kind, ServiceUrl) for kind in services.values()), services


@pytest.mark.parametrize(
    "command",
    [
        ("send", "--node", "127.0.0.1:8701", "--token", "t", "m.json"),
        ("stats", "--hub", "127.0.0.1:8700"),
        ("stats", "--node", "localhost"),
        ("serve", "node", "--province", "H53", "--data-dir", "n", "--hub", "127.0.0.1:8700"),
        ("serve", "node", "--province", "H53", "--data-dir", "n", "--hub", "ftp://127.0.0.1"),
    ],
    ids=["send", "stats --hub", "stats --node", "serve node --hub", "another scheme"],
)
def test_a_service_url_without_http_or_https_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: tuple[str, ...]
) -> None:
    """`send` said EDOC-NET-001 (exit 3), as if the node were down; `serve node` started
    and retried such a hub for ever."""
    from edoc.node import app as node_app

    started: list[object] = []
    monkeypatch.setattr(node_app, "run", started.append)  # a node that would run for ever
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("EDOC_HUB_TOKEN", "t")
    (tmp_path / "m.json").write_text("{}")
    result = CliRunner().invoke(main, list(command))
    assert result.exit_code == 2, result.output
    assert "needs http:// or https://" in result.stderr
    assert started == [] and not (tmp_path / "n").exists()


PASSWORD = "pa55/w0rd"  # a '/' in it: urllib reads what follows as the path, and the port


@pytest.mark.parametrize(
    "url",
    [
        f"https://admin:{PASSWORD}@127.0.0.1:8701",  # urllib finds no port, no password
        f"https://admin:{PASSWORD.replace('/', '')}@127.0.0.1:99999",  # a port out of range
        f"ftp://admin:{PASSWORD}@127.0.0.1",  # another scheme
        f"admin:{PASSWORD}@127.0.0.1:8701",  # no scheme at all
    ],
    ids=["'/' in the password", "port out of range", "another scheme", "no scheme"],
)
def test_a_service_urls_password_is_never_repeated(url: str) -> None:
    """The usage error repeated the URL as given, its password with it: a secret on the
    terminal, in a CI log. It still says what is wrong, the URL with its password as ***."""
    result = CliRunner().invoke(main, ["stats", "--hub", url])
    assert result.exit_code == 2, result.output
    assert "pa55" not in result.stderr and "w0rd" not in result.stderr, result.stderr
    assert "admin:***@127.0.0.1" in result.stderr, result.stderr

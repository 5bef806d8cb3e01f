"""`edoc keys …`, `edoc pack --sign-as` and `edoc verify` as a shell user runs them."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509

from edoc.cli import main
from edoc.cli.failures import EXIT_REFUSED
from tests.support.pki import SAMPLE, SENDER, SIGNER

EDOC = str(Path(sys.executable).parent / "edoc")


def edoc(*args: str | Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([EDOC, *map(str, args)], capture_output=True, text=True, check=False)
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def refused(code: str, *args: str | Path) -> None:
    """The CLI contract: non-zero exit, one line `error CODE: message` on stderr."""
    result = edoc(*args, ok=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error {code}: "), lines[0]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--name", "Sở TTTT Tây Ninh", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path)
    edoc("keys", "issue", "000.00.00.H23", "--keys-dir", path)
    return path


def test_sign_verify_roundtrip(keys: Path, tmp_path: Path) -> None:
    out = tmp_path / "doc.edxml"
    edoc(
        "pack", SAMPLE, "-o", out, "--sign-as", SENDER, "--signer-cert", SIGNER, "--keys-dir", keys
    )
    report = json.loads(edoc("verify", out, "--json", "--keys-dir", keys).stdout)
    assert [(s["kind"], s["org_id"]) for s in report["signers"]] == [
        ("organization", SENDER),
        ("personal", SENDER),
    ]
    assert report["signers"][1]["name"] == SIGNER


def test_verify_failures_have_their_codes(keys: Path, tmp_path: Path) -> None:
    unsigned = tmp_path / "unsigned.edxml"
    edoc("pack", SAMPLE, "-o", unsigned)
    refused("EDOC-SIG-001", "verify", unsigned, "--keys-dir", keys)

    signed = tmp_path / "signed.edxml"
    edoc("pack", SAMPLE, "-o", signed, "--sign-as", SENDER, "--keys-dir", keys)
    tampered = tmp_path / "tampered.edxml"
    tampered.write_bytes(signed.read_bytes().replace(b"STTTT-VP", b"STTTT-XX"))
    refused("EDOC-SIG-002", "verify", tampered, "--keys-dir", keys)

    other_ca = tmp_path / "other"
    edoc("keys", "init", "--keys-dir", other_ca)
    refused("EDOC-SIG-003", "verify", signed, "--keys-dir", other_ca)

    refused(
        "EDOC-SIG-006",
        "pack",
        SAMPLE,
        "-o",
        tmp_path / "x.edxml",
        "--sign-as",
        "000.00.00.H23",
        "--keys-dir",
        keys,
    )


def test_revoke_then_verify_reports_revoked(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--keys-dir", path)
    signed = tmp_path / "signed.edxml"
    edoc("pack", SAMPLE, "-o", signed, "--sign-as", SENDER, "--keys-dir", path)
    edoc("keys", "revoke", SENDER, "--reason", "keyCompromise", "--keys-dir", path)
    refused("EDOC-SIG-005", "verify", signed, "--keys-dir", path)
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    assert [row["state"] for row in listed] == ["revoked"]


def test_rotate_and_list(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--days", "20", "--keys-dir", path)
    edoc("keys", "rotate", SENDER, "--overlap-days", "3", "--keys-dir", path)
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    assert sorted(row["state"] for row in listed) == ["active", "in overlap"]
    assert [row["expiring_soon"] for row in listed if row["state"] == "in overlap"] == [True]
    table = edoc("keys", "list", "--keys-dir", path)
    assert "in overlap" in table.stdout
    assert "expires within 30 days" in table.stderr


def _seals(path: Path, org: str = SENDER) -> list[tuple[str, str]]:
    """The states and names of ``org``'s seals."""
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    return sorted(
        (row["state"], row["org_name"])
        for row in listed
        if row["kind"] == "organization" and row["org_id"] == org
    )


def test_a_second_active_seal_is_refused_unless_exist_ok_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--name", "Sở TTTT Tây Ninh", "--keys-dir", path)
    second = edoc("keys", "issue", SENDER, "--keys-dir", path, ok=False)
    assert second.returncode == 1  # refused input
    assert second.stderr.startswith(f"error EDOC-KEY-003: {SENDER} already has an active seal")
    assert "keys rotate" in second.stderr
    kept = edoc("keys", "issue", SENDER, "--exist-ok", "--keys-dir", path)
    assert "already valid" in kept.stdout
    assert _seals(path) == [("active", "Sở TTTT Tây Ninh")]
    # a signer's certificate beside the seal is no second seal
    edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path)


def _personal(path: Path, name: str = SIGNER) -> list[str]:
    """The states of ``name``'s personal certificates at SENDER."""
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    return sorted(
        row["state"]
        for row in listed
        if row["kind"] == "personal" and row["org_id"] == SENDER and row["full_name"] == name
    )


def test_a_second_active_personal_certificate_is_refused_as_a_second_seal_is(
    tmp_path: Path,
) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path)
    second = edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path, ok=False)
    assert second.returncode == 1  # refused input
    assert second.stderr.startswith(
        f"error EDOC-KEY-003: {SIGNER!r} of {SENDER} already has an active personal certificate"
    )
    assert "keys rotate" in second.stderr
    kept = edoc("keys", "issue", SENDER, "--personal", SIGNER, "--exist-ok", "--keys-dir", path)
    assert "already valid" in kept.stdout
    assert _personal(path) == ["active"]
    # another person of the organization, or the same name at another one, is not the same
    edoc("keys", "issue", SENDER, "--personal", "Trần Thị B", "--keys-dir", path)
    edoc("keys", "issue", "000.00.00.H23", "--personal", SIGNER, "--keys-dir", path)
    # rotation replaces it with an overlap, the seal's untouched (and rotated on its own)
    edoc("keys", "issue", SENDER, "--keys-dir", path)
    edoc("keys", "rotate", SENDER, "--personal", SIGNER, "--keys-dir", path)
    assert _personal(path) == ["active", "in overlap"]
    assert _seals(path) == [("active", "")]
    edoc("keys", "rotate", SENDER, "--keys-dir", path)
    assert _seals(path) == [("active", ""), ("in overlap", "")]
    assert _personal(path) == ["active", "in overlap"]
    # after a revocation, a new one is what the administrator wants
    edoc("keys", "revoke", SENDER, "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path)
    assert _personal(path) == ["active", "revoked", "revoked"]


def test_a_certificate_issued_without_a_name_takes_the_organizations(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--name", "Sở TTTT Tây Ninh", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--personal", SIGNER, "--keys-dir", path)
    # after a revocation a new seal is what the administrator wants: issued, and named
    # as the organization's earlier certificates are though no --name is given
    edoc("keys", "revoke", SENDER, "--reason", "keyCompromise", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--keys-dir", path)
    assert _seals(path) == [("active", "Sở TTTT Tây Ninh"), ("revoked", "Sở TTTT Tây Ninh")]
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    assert {row["org_name"] for row in listed} == {"Sở TTTT Tây Ninh"}
    # an organization never named stays unnamed
    edoc("keys", "issue", "000.00.00.H23", "--keys-dir", path)
    assert _seals(path, "000.00.00.H23") == [("active", "")]


def test_keys_errors(tmp_path: Path) -> None:
    refused("EDOC-KEY-001", "keys", "list", "--keys-dir", tmp_path / "none")
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    refused("EDOC-KEY-003", "keys", "init", "--keys-dir", path)
    refused("EDOC-ORG-001", "keys", "issue", "12.34", "--keys-dir", path)
    refused("EDOC-KEY-002", "keys", "rotate", SENDER, "--keys-dir", path)
    refused("EDOC-KEY-002", "keys", "rotate", SENDER, "--personal", SIGNER, "--keys-dir", path)
    refused("EDOC-KEY-002", "keys", "revoke", "abcdef", "--keys-dir", path)


@pytest.mark.parametrize(
    ("file", "damage", "why"),
    [
        ("index.json", b"{bad", "not the key index edoc writes: Expecting property name"),
        ("index.json", b"{}", "not the key index edoc writes: no field 'certificates'"),
        ("ca/root.pem", b"garbage", "it does not read as PEM"),
    ],
)
def test_a_damaged_key_store_file_is_named(
    tmp_path: Path, file: str, damage: bytes, why: str
) -> None:
    """It was a JSONDecodeError's or cryptography's ValueError's traceback; then exit 3, as
    a fault of edoc: the operator's file to restore, as a missing CA is, exit 1."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    (path / file).write_bytes(damage)
    result = CliRunner().invoke(main, ["keys", "list", "--keys-dir", str(path)])
    assert result.exit_code == EXIT_REFUSED
    assert result.stderr.startswith(f"error EDOC-KEY-000: {path / file} is damaged ({why}")
    assert result.stderr.endswith("; restore the keys folder from a copy\n")


def test_a_serial_is_said_in_whole_bytes_everywhere_and_read_in_any_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A serial whose first byte is under 0x10 lost its leading 0 (`keys issue`, `verify`),
    and `keys list` cut every serial to 16 digits: not the serial openssl shows, nor one
    `keys revoke` could be given."""
    serials = itertools.count(0x123456789ABCDEF0123456789ABCDEF01234567)  # 39 hex digits
    monkeypatch.setattr(x509, "random_serial_number", lambda: next(serials))
    keys, signed = tmp_path / "keys", tmp_path / "signed.edxml"

    def run(*args: str | Path) -> str:
        result = CliRunner().invoke(main, [*map(str, args), "--keys-dir", str(keys)])
        assert result.exit_code == 0, result.output
        return result.output

    run("keys", "init")
    issued = run("keys", "issue", SENDER, "--name", "Sở TTTT Tây Ninh")
    (pem,) = (keys / "certs").glob("*.pem")
    serial = f"0{x509.load_pem_x509_certificate(pem.read_bytes()).serial_number:x}"
    assert len(serial) == 40 and f"certificate {serial} for" in issued
    if shutil.which("openssl"):  # the same serial as openssl's (in its capitals)
        said = subprocess.run(
            ["openssl", "x509", "-noout", "-serial", "-in", pem],
            capture_output=True,
            text=True,
            check=True,
        )
        assert said.stdout.strip() == f"serial={serial.upper()}"
    assert serial in run("keys", "list")
    assert [row["serial"] for row in json.loads(run("keys", "list", "--json"))] == [serial]
    run("pack", SAMPLE, "-o", signed, "--sign-as", SENDER)
    assert f"serial {serial}" in run("verify", signed)
    assert [s["serial"] for s in json.loads(run("verify", signed, "--json"))["signers"]] == [serial]
    revoked = run("keys", "revoke", serial.upper(), "--reason", "keyCompromise")  # openssl's
    assert revoked.strip() == f"revoked organization certificate {serial} (keyCompromise)"


def test_a_store_made_before_whole_byte_serials_is_read_and_said_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its index and file names hold a serial without its leading 0: still found (to sign,
    to revoke in either form), and said as every serial is."""
    serials = itertools.count(0x123456789ABCDEF0123456789ABCDEF01234567)  # 39 hex digits
    monkeypatch.setattr(x509, "random_serial_number", lambda: next(serials))
    keys = tmp_path / "keys"

    def run(*args: str | Path) -> str:
        result = CliRunner().invoke(main, [*map(str, args), "--keys-dir", str(keys)])
        assert result.exit_code == 0, result.output
        return result.output

    run("keys", "init")
    run("keys", "issue", SENDER, "--name", "Sở TTTT Tây Ninh")
    (pem,) = (keys / "certs").glob("*.pem")
    serial = pem.stem
    assert serial.startswith("0") and len(serial) == 40
    for made in (pem, pem.with_suffix(".key")):  # as an older edoc named them
        made.rename(made.with_stem(serial[1:]))
    index = keys / "index.json"
    index.write_text(index.read_text().replace(serial, serial[1:]))

    assert [row["serial"] for row in json.loads(run("keys", "list", "--json"))] == [serial]
    run("pack", SAMPLE, "-o", tmp_path / "signed.edxml", "--sign-as", SENDER)
    revoked = run("keys", "revoke", serial, "--reason", "keyCompromise")
    assert revoked.strip() == f"revoked organization certificate {serial} (keyCompromise)"


# --- a TLS certificate renewed: running services present it at their next connection ----
HUB = "000.00.00.G22"


def _tls(path: Path, org: str = HUB) -> list[tuple[str, list[str]]]:
    """The states and host names (DNS, then IP address SANs) of ``org``'s TLS
    certificates, oldest first."""
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    found = []
    for row in sorted(listed, key=lambda row: row["not_before"]):
        if row["kind"] != "tls" or row["org_id"] != org:
            continue
        pem = (path / "certs" / f"{row['serial']}.pem").read_bytes()
        names = x509.load_pem_x509_certificate(pem).extensions
        sans = names.get_extension_for_class(x509.SubjectAlternativeName).value
        hosts = sans.get_values_for_type(x509.DNSName)
        hosts += [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        found.append((row["state"], hosts))
    return found


def _issue_tls(
    path: Path, *hosts: str, also: tuple[str, ...] = (), ok: bool = True
) -> subprocess.CompletedProcess[str]:
    """`edoc keys issue HUB --tls-host HOST …` with the options ``also``."""
    host_options = [option for host in hosts for option in ("--tls-host", host)]
    return edoc("keys", "issue", HUB, *host_options, *also, "--keys-dir", path, ok=ok)


def test_a_tls_certificate_that_would_drop_a_host_name_is_refused_and_nothing_issued(
    tmp_path: Path,
) -> None:
    """It was issued, and the running hub presented it at its next connection: every node
    that reaches it as 127.0.0.1 then failed host-name verification, nothing said."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    _issue_tls(path, "localhost", "127.0.0.1")  # a first one takes any hosts
    files = sorted((path / "certs").iterdir())

    dropping = _issue_tls(path, "hub.example", ok=False)
    assert dropping.returncode == 1  # refused, as a second seal is
    (line,) = dropping.stderr.splitlines()
    assert line.startswith(
        f"error EDOC-KEY-005: the new TLS certificate of {HUB} would leave out"
        " localhost, 127.0.0.1, which its current one ("
    )
    assert "--drop-hosts" in line
    dropping_one = _issue_tls(path, "localhost", "hub.example", ok=False)
    assert "would leave out 127.0.0.1, which" in dropping_one.stderr
    assert sorted((path / "certs").iterdir()) == files  # no key, no certificate
    assert _tls(path) == [("active", ["localhost", "127.0.0.1"])]

    # --exist-ok keeps the current one quietly, as before, whatever hosts are asked
    kept = _issue_tls(path, "hub.example", also=("--exist-ok",))
    assert "already valid" in kept.stdout
    # after a revocation nothing is presented that a peer reaches: any hosts, as a first
    edoc("keys", "revoke", HUB, "--reason", "superseded", "--keys-dir", path)
    _issue_tls(path, "hub.example")
    assert _tls(path) == [("revoked", ["localhost", "127.0.0.1"]), ("active", ["hub.example"])]


def test_a_tls_certificate_drops_host_names_when_the_operator_says_so(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    _issue_tls(path, "localhost", "127.0.0.1")
    _issue_tls(path, "hub.example", also=("--drop-hosts",))
    assert _tls(path) == [
        ("active", ["localhost", "127.0.0.1"]),
        ("active", ["hub.example"]),
    ]
    # it says which certificate it is about: a TLS one
    alone = CliRunner().invoke(
        main, ["keys", "issue", HUB, "--drop-hosts", "--keys-dir", str(path)]
    )
    assert alone.exit_code == 2
    assert "--drop-hosts goes with --tls-host" in alone.output
    help_text = edoc("keys", "issue", "--help").stdout
    assert "--drop-hosts" in help_text and "EDOC-KEY-005" in help_text


def test_a_tls_renewal_is_judged_by_its_host_names_not_their_spelling_or_order(
    tmp_path: Path,
) -> None:
    """A DNS name matches without regard to case and an IP address as the address, as
    host-name verification matches them; adding hosts drops none."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    _issue_tls(path, "Hub.Example", "::1")
    _issue_tls(path, "0:0::1", "hub.example")  # the same two, respelled and reordered
    _issue_tls(path, "hub.example", "::1", "localhost", "10.0.0.1")  # and two more
    assert [state for state, _ in _tls(path)] == ["active"] * 3
    assert _tls(path)[-1] == ("active", ["hub.example", "localhost", "::1", "10.0.0.1"])
    # the current one is the newest: leaving out one it added is dropping it
    refused = _issue_tls(path, "hub.example", "::1", "localhost", ok=False)
    assert refused.stderr.startswith("error EDOC-KEY-005: ")
    assert "would leave out 10.0.0.1, which" in refused.stderr


def _valid_days(path: Path) -> dict[tuple[str, str], int]:
    """How many days each certificate in ``path`` is valid, by (kind, org id), as
    `keys list --json` says."""
    listed = json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout)
    return {
        (row["kind"], row["org_id"]): (
            dt.datetime.fromisoformat(row["not_after"])
            - dt.datetime.fromisoformat(row["not_before"])
        ).days
        for row in listed
    }


def test_a_tls_certificate_is_valid_as_long_as_asked_and_each_kind_has_its_default(
    tmp_path: Path,
) -> None:
    """`--days 30 --tls-host h` made a certificate valid 365 days: the TLS path never
    passed --days on, and an operator asking for a short one got a long one, silently."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    _issue_tls(path, "localhost", also=("--days", "30"))
    edoc("keys", "issue", HUB, "--days", "45", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--tls-host", "localhost", "--keys-dir", path)
    edoc("keys", "issue", SENDER, "--keys-dir", path)
    assert _valid_days(path) == {
        ("tls", HUB): 30,
        ("organization", HUB): 45,
        ("tls", SENDER): 365,  # the default for TLS, as `edoc up` provisions it
        ("organization", SENDER): 730,  # and for seals and personal certificates
    }
    help_text = " ".join(edoc("keys", "issue", "--help").stdout.split())
    assert "730 for seals and personal certificates, 365 for TLS" in help_text


def test_a_personal_tls_certificate_is_a_usage_error_and_nothing_is_issued(
    tmp_path: Path,
) -> None:
    """It was issued: a TLS certificate in a person's name, which no hub or node ever
    presents (each presents its organization's)."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    asked = ["issue", HUB, "--personal", SIGNER, "--tls-host", "localhost"]
    both = CliRunner().invoke(main, ["keys", *asked, "--keys-dir", str(path)])
    assert both.exit_code == 2
    assert "--personal does not go with --tls-host" in both.output
    assert list((path / "certs").iterdir()) == []
    assert json.loads(edoc("keys", "list", "--json", "--keys-dir", path).stdout) == []


def test_an_internationalized_host_name_is_asked_as_its_a_label(tmp_path: Path) -> None:
    """`--tls-host bộ.vn` was a fault (EDOC-000, exit 3: the certificate's DNS name is
    ASCII); it is a usage error saying the form a certificate holds, and nothing is
    issued. Its A-label is taken."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    asked = CliRunner().invoke(
        main, ["keys", "issue", HUB, "--tls-host", "bộ.vn", "--keys-dir", str(path)]
    )
    assert asked.exit_code == 2, asked.output
    assert "bộ.vn" in asked.output and "A-label (xn--" in asked.output
    assert list((path / "certs").iterdir()) == []
    _issue_tls(path, "xn--b-8xm.vn")
    assert _tls(path) == [("active", ["xn--b-8xm.vn"])]


def test_a_tls_renewal_for_a_wildcard_keeps_the_names_it_covers(tmp_path: Path) -> None:
    """A peer reaching a.example.gov verifies a certificate for *.example.gov: renewing
    for the wildcard drops no name it covers (one label, as host-name verification
    matches it), and still drops those it does not."""
    path = tmp_path / "keys"
    edoc("keys", "init", "--keys-dir", path)
    _issue_tls(path, "hub.example.gov", "a.b.example.gov")
    refused = _issue_tls(path, "*.example.gov", ok=False)
    assert "would leave out a.b.example.gov, which" in refused.stderr
    _issue_tls(path, "*.Example.gov", "a.b.example.gov")
    assert _tls(path)[-1] == ("active", ["*.Example.gov", "a.b.example.gov"])
    # and the wildcard itself is a name: one for each host it covered drops it
    refused = _issue_tls(path, "hub.example.gov", "a.b.example.gov", ok=False)
    assert "would leave out *.Example.gov, which" in refused.stderr

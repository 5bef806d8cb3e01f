"""`edoc keys …`: the simulated Government CA (certificates, rotation, revocation)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from rich.table import Table

from edoc import errors, pki
from edoc.cli.options import console, existing_keys, json_option, uses_keys
from edoc.keyindex import utcnow
from edoc.keystore import KeyStore, Wanted


@click.group()
def keys() -> None:
    """Run the simulated Government CA: certificates, rotation, revocation."""


@keys.command("init")
@uses_keys
@click.option("--exist-ok", is_flag=True, help="Succeed quietly when the CA already exists.")
def keys_init(keys_dir: Path, exist_ok: bool) -> None:
    """Create the root and issuing CA."""
    store = KeyStore(keys_dir)
    if exist_ok and store.exists():
        click.echo(f"CA already in {keys_dir}")
        return
    store.init()
    click.echo(f"created root and issuing CA in {keys_dir}")


def _ascii_hosts(
    _ctx: click.Context, _param: click.Parameter, hosts: tuple[str, ...]
) -> tuple[str, ...]:
    """--tls-host as a certificate holds host names: in ASCII (an IDN by its A-label)."""
    for host in hosts:
        if not host.isascii():
            raise click.BadParameter(
                f"{host} is not ASCII: give an internationalized name as its A-label"
                " (xn--…), as a certificate holds it"
            )
    return hosts


@keys.command("issue")
@click.argument("org_id", metavar="ORGID")
@click.option("--name", "org_name", default="", help="The organization's name.")
@click.option("--personal", "full_name", default="", help="Issue a personal certificate.")
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=None,
    help=f"How long the certificate is valid (default: {pki.SIGNER_DAYS} for seals and"
    f" personal certificates, {pki.TLS_DAYS} for TLS).",
)
@click.option(
    "--tls-host",
    "tls_hosts",
    multiple=True,
    callback=_ascii_hosts,
    help="Issue a TLS server/client certificate (EC P-256 key) for these hosts (hub or node).",
)
@click.option(
    "--exist-ok",
    is_flag=True,
    help="Succeed quietly, keeping it, when one is already valid (without it, an active"
    " seal or personal certificate refuses a second: `keys rotate` replaces one).",
)
@click.option(
    "--drop-hosts",
    is_flag=True,
    help="With --tls-host: issue it though it leaves out host names of the organization's"
    " current TLS certificate (refused without it, EDOC-KEY-005: a running hub or node"
    " presents the new one at its next connection, and a peer that reaches it by a"
    " dropped name is refused).",
)
@uses_keys
def keys_issue(
    org_id: str,
    org_name: str,
    full_name: str,
    days: int | None,
    tls_hosts: tuple[str, ...],
    exist_ok: bool,
    drop_hosts: bool,
    keys_dir: Path,
) -> None:
    """Issue an organization seal (or a signer's certificate, or a TLS certificate).

    An organization with an active seal gets no second one, nor a person with an active
    personal certificate of it (EDOC-KEY-003; `keys rotate` replaces one). A TLS
    certificate renewed must keep every host name of the current one (EDOC-KEY-005)
    unless --drop-hosts, and is the organization's, never a person's (--personal).
    Without --name, the organization's name on its latest certificate."""
    if drop_hosts and not tls_hosts:
        raise click.UsageError("--drop-hosts goes with --tls-host")
    if full_name and tls_hosts:
        # services present their organization's TLS certificate: a person's is never used
        raise click.UsageError(
            "--personal does not go with --tls-host: a TLS certificate is the organization's"
        )
    store = existing_keys(keys_dir)
    kind = pki.CertKind.TLS if tls_hosts else None
    if exist_ok:
        try:
            found = store.current(org_id, full_name, kind)
        except errors.UnknownCertificate:
            pass
        else:
            click.echo(f"{found.kind.value} certificate {found.shown_serial} already valid")
            return
    wanted = Wanted.of(
        org_id, org_name=org_name, full_name=full_name, days=days, tls_hosts=tls_hosts
    )
    record = store.issue_asked(wanted, drop_hosts=drop_hosts)
    click.echo(f"issued {record.kind.value} certificate {record.shown_serial} for {org_id}")


@keys.command("tsa")
@click.option(
    "--days",
    type=click.IntRange(1, 7300),
    default=3650,
    show_default=True,
    help="How long the certificate is valid.",
)
@click.option("--exist-ok", is_flag=True, help="Succeed quietly when one is already valid.")
@uses_keys
def keys_tsa(days: int, exist_ok: bool, keys_dir: Path) -> None:
    """Issue the time-stamping authority's certificate (EKU timeStamping, RFC 3161)."""
    store = existing_keys(keys_dir)
    if exist_ok:
        try:
            found = store.tsa_identity().record
        except errors.UnknownCertificate:
            pass
        else:
            click.echo(f"tsa certificate {found.shown_serial} already valid")
            return
    record = store.issue_tsa(days=days)
    click.echo(f"issued tsa certificate {record.shown_serial}")


@keys.command("rotate")
@click.argument("org_id", metavar="ORGID")
@click.option("--personal", "full_name", default="", help="Rotate this person's certificate.")
@click.option(
    "--overlap-days",
    type=click.FloatRange(0, 365),
    default=7.0,
    show_default=True,
    help="How long signatures by the old key still verify.",
)
@uses_keys
def keys_rotate(org_id: str, full_name: str, overlap_days: float, keys_dir: Path) -> None:
    """New key and seal for ORGID (or certificate for a person of it); the old one
    verifies until the overlap ends."""
    store = existing_keys(keys_dir)
    record = store.rotate(org_id, full_name=full_name, overlap_days=overlap_days)
    who = f"{full_name} of {org_id}" if full_name else org_id
    click.echo(f"rotated {who}: now signing with {record.shown_serial}")


@keys.command("revoke")
@click.argument("target", metavar="ORGID|SERIAL")
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    help="RFC 5280 reason, e.g. keyCompromise (what the key signed before fails to verify"
    " too; any other reason refuses only what was signed after), superseded.",
)
@uses_keys
def keys_revoke(target: str, reason: str, keys_dir: Path) -> None:
    """Revoke the certificate SERIAL, or every unrevoked certificate of ORGID (its seals,
    personal and TLS certificates), and publish the CRL."""
    for record in existing_keys(keys_dir).revoke(target, reason):
        click.echo(f"revoked {record.kind.value} certificate {record.shown_serial} ({reason})")


@keys.command("list")
@json_option
@uses_keys
def keys_list(as_json: bool, keys_dir: Path) -> None:
    """Every certificate with its state; warns of those expiring within 30 days."""
    store = existing_keys(keys_dir)
    now = utcnow()
    expiring = {r.shown_serial for r in store.expiring(now)}
    records = sorted(store.records(), key=lambda r: (r.org_id, r.kind, r.not_before))
    if as_json:
        rows = [
            {
                **r.to_json(),
                "serial": r.shown_serial,  # (to_json's is the index's, as stored)
                "state": r.state(now),
                "expiring_soon": r.shown_serial in expiring,
            }
            for r in records
        ]
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    table = Table("organization", "kind", "name", "serial", "valid from", "valid to", "state")
    for r in records:
        soon = r.shown_serial in expiring
        state = r.state(now) + (" [yellow]⚠ expires soon[/]" if soon else "")
        table.add_row(
            r.org_id,
            r.kind.value,
            r.full_name or r.org_name,
            r.shown_serial,  # whole: what `keys revoke` is given
            f"{r.not_before:%Y-%m-%d}",
            f"{r.expires():%Y-%m-%d}",
            state,
        )
    console().print(table)
    for serial in sorted(expiring):
        click.echo(f"warning: certificate {serial} expires within 30 days", err=True)

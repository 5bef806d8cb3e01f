"""Key stores as edoc made them before TLS keys were EC: an RSA-2048 TLS certificate."""

from __future__ import annotations

import pytest

from edoc import keystore, pki
from edoc.keyindex import CertRecord


def issue_rsa_tls(keys: keystore.KeyStore, org_id: str, hosts: tuple[str, ...]) -> CertRecord:
    """A TLS certificate with an RSA-2048 key (keyEncipherment too), as issued before."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(keystore, "_new_keys", lambda wanted: pki.new_keys(len(wanted)))
        return keys.issue(org_id, tls_hosts=hosts)

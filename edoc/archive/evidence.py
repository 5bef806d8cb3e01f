"""What a container proves about one document, as the node kept it.

Evidence is everything one organization's node kept about one document: the document
package as it was sent or received (its exact bytes), every status message about it
in either direction, and the CA material a verifier needs years later (the issuing
CA's certificate and the CRL), so that the root certificate alone checks it all.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from cryptography import x509

from edoc.archive.merkle import Proof
from edoc.model import MessageKind


class Direction(StrEnum):
    SENT = "sent"
    RECEIVED = "received"


@dataclass(frozen=True)
class BatchProof:
    """That a package was in a batch the node had stamped (edoc.archive.batches): the
    batch's token, over the Merkle root its ``path`` leads to from the package."""

    token: bytes
    path: Proof


@dataclass(frozen=True)
class KeptMessage:
    """One package the node kept, with what the node knows of it."""

    direction: Direction
    kind: MessageKind
    status_code: str  # a status's code; "" for the document
    at: dt.datetime  # when the node stored it
    package: bytes  # the package's bytes, as sent or received
    proof: BatchProof | None = None  # None: not stamped before the export

    @property
    def label(self) -> str:
        """What the file is, for its name in a container: ``sent-document``,
        ``received-status-03``."""
        code = f"-{self.status_code}" if self.status_code else ""
        return f"{self.direction.value}-{self.kind.value}{code}"


@dataclass(frozen=True)
class Evidence:
    org_id: str  # whose node kept it: the sender or a recipient
    document_id: str
    messages: tuple[KeptMessage, ...]  # oldest first
    issuing: tuple[x509.Certificate, ...]  # the CAs that issue signers' certificates
    crl: x509.CertificateRevocationList

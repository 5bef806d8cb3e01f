"""What a container proves about one document, as the node kept it.

Evidence is everything one organization's node kept about one document: the document
package as it was sent or received (its exact bytes), every status message about it
in either direction, and the CA material a verifier needs years later (the issuing
CA's certificate and the CRL), so that the root certificate alone checks it all.

A package kept in a file stays there until it is used: read once, in chunks, on the
thread that writes the container, hashed as it is copied (edoc.archive.container).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography import x509

from edoc import errors
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
    # the package as sent or received: its bytes (kept in its row), or its file, read in
    # chunks where it is used (a 200 MB document's package is never whole in memory)
    package: bytes | Path

    @property
    def label(self) -> str:
        """What the file is, for its name in a container: ``sent-document``,
        ``received-status-03``."""
        code = f"-{self.status_code}" if self.status_code else ""
        return f"{self.direction.value}-{self.kind.value}{code}"


@dataclass(frozen=True)
class KeptDocument:
    """What one organization kept about one document (its node's packages, or the hub's):
    its evidence but for the CA material, which joins it where its container is written
    (edoc.archive.export.write_container)."""

    org_id: str
    document_id: str
    messages: tuple[KeptMessage, ...]  # the document first, then its statuses


@dataclass(frozen=True)
class Evidence:
    org_id: str  # whose node kept it: the sender or a recipient
    document_id: str
    messages: tuple[KeptMessage, ...]  # oldest first
    issuing: tuple[x509.Certificate, ...]  # the CAs that issue signers' certificates
    crl: x509.CertificateRevocationList


def open_package(path: Path) -> io.BufferedReader:
    """A kept package's file, open for reading; StorageError if it is gone."""
    try:
        return path.open("rb")
    except OSError as exc:
        raise _gone(path, exc) from None


def package_sha256(package: bytes | Path) -> bytes:
    """The SHA-256 of a kept package, its file (if in one) read in chunks."""
    if isinstance(package, bytes):
        return hashlib.sha256(package).digest()
    with open_package(package) as file:
        return hashlib.file_digest(file, "sha256").digest()


def _gone(path: Path, exc: OSError) -> errors.StorageError:
    return errors.StorageError(
        f"a kept package is gone from {path}: {exc.strerror}; it cannot be archived"
    )

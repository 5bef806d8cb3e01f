"""The edoc error tree.

Every error edoc raises on purpose is an :class:`EdocError` with a stable ``code``
(``EDOC-AREA-NNN``) and the HTTP status a service answers with. Foreign exceptions
(lxml, cryptography, sqlite) are translated into these at the module that calls the
foreign library, so callers only ever handle this tree.
"""

from __future__ import annotations

from typing import Any, ClassVar


class EdocError(Exception):
    code: ClassVar[str] = "EDOC-000"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message}}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


# --- input in general ------------------------------------------------------------
class InputError(EdocError):
    """The caller sent something we refuse; nothing was stored."""

    code = "EDOC-IN-000"
    status = 400


class TooLarge(InputError):
    code = "EDOC-IN-001"
    status = 413


class FileMissing(InputError):
    code = "EDOC-IN-002"


# --- XML (edoc.xmlsafe) ----------------------------------------------------------
class XmlError(InputError):
    code = "EDOC-XML-000"


class MalformedXml(XmlError):
    code = "EDOC-XML-001"


class ForbiddenDtd(XmlError):
    """DOCTYPE declarations (and so entities, XXE, billion laughs) are never accepted."""

    code = "EDOC-XML-002"


class ForbiddenEntity(XmlError):
    code = "EDOC-XML-003"


class XmlTooLarge(XmlError):
    code = "EDOC-XML-004"
    status = 413


class XmlTooDeep(XmlError):
    code = "EDOC-XML-005"


class WrongNamespace(XmlError):
    code = "EDOC-XML-006"


class SchemaViolation(XmlError):
    code = "EDOC-XML-007"


class ForbiddenXmlConstruct(XmlError):
    """Processing instructions and XML Schema instance attributes (xsi:schemaLocation,
    xsi:type, ...) have no place in an edXML message. (Comments are dropped unread.)"""

    code = "EDOC-XML-008"


# --- envelope content (edoc.envelope, edoc.metadata) -----------------------------
class EnvelopeError(InputError):
    code = "EDOC-ENV-000"


class MissingField(EnvelopeError):
    code = "EDOC-ENV-001"


class InvalidField(EnvelopeError):
    code = "EDOC-ENV-002"


class UnknownField(EnvelopeError):
    code = "EDOC-ENV-003"


class BadMetadataJson(EnvelopeError):
    code = "EDOC-ENV-004"


class InvalidOrgId(EnvelopeError):
    code = "EDOC-ORG-001"


# --- attachments -------------------------------------------------------------------
class AttachmentError(InputError):
    code = "EDOC-ATT-000"


class BadAttachmentEncoding(AttachmentError):
    code = "EDOC-ATT-001"


class AttachmentMismatch(AttachmentError):
    """Attachments and manifest disagree: missing, extra, duplicate or changed bytes."""

    code = "EDOC-ATT-002"


class UnsafeAttachmentName(AttachmentError):
    code = "EDOC-ATT-003"


# --- signatures and certificates (edoc.signing, edoc.certcheck) ---------------------
class SignatureError(InputError):
    code = "EDOC-SIG-000"
    status = 422


class MissingSignature(SignatureError):
    code = "EDOC-SIG-001"


class TamperedSignature(SignatureError):
    code = "EDOC-SIG-002"


class UntrustedCertificate(SignatureError):
    code = "EDOC-SIG-003"


class ExpiredCertificate(SignatureError):
    code = "EDOC-SIG-004"


class RevokedCertificate(SignatureError):
    code = "EDOC-SIG-005"


class WrongOrganization(SignatureError):
    """The certificate belongs to another organization than the message's From."""

    code = "EDOC-SIG-006"
    status = 403


class WrappedSignature(SignatureError):
    """References other than the expected same-document ones: wrapping, detached, extra."""

    code = "EDOC-SIG-007"


class WrongKeyUsage(SignatureError):
    code = "EDOC-SIG-008"


class UnsupportedAlgorithm(SignatureError):
    code = "EDOC-SIG-009"


class UnsignedContent(SignatureError):
    """Content no signature covers and edoc never writes, riding along in or beside the
    signatures or in a relay's hop: an element, attribute or text beyond their fixed shape."""

    code = "EDOC-SIG-010"


# --- keys on disk (edoc.keyindex, edoc.keystore) -----------------------------------
class KeyStoreError(EdocError):
    code = "EDOC-KEY-000"
    status = 500


class KeyStoreMissing(KeyStoreError):
    code = "EDOC-KEY-001"


class UnknownCertificate(KeyStoreError):
    code = "EDOC-KEY-002"
    status = 404


class KeyStoreExists(KeyStoreError):
    code = "EDOC-KEY-003"
    status = 409


class DamagedKey(KeyStoreError):
    """A private key file that does not sign what its certificate verifies."""

    code = "EDOC-KEY-004"


class TlsHostsDropped(KeyStoreError):
    """A TLS certificate asked without host names the organization's current one has: a
    running hub or node presents the new one at its next connection (edoc.tls), and a
    peer that reaches it by a dropped name then fails host-name verification."""

    code = "EDOC-KEY-005"
    status = 409


# --- the exchange (edoc.hub, edoc.node) -------------------------------------------------
class ExchangeError(InputError):
    code = "EDOC-HUB-000"


class UnknownRecipient(ExchangeError):
    code = "EDOC-HUB-001"
    status = 422


class Impersonation(ExchangeError):
    """The sender does not belong to the province or ministry of the node that sent it."""

    code = "EDOC-HUB-002"
    status = 403


class DuplicateDocument(ExchangeError):
    """Same sender and DocumentId as an accepted document, but other content."""

    code = "EDOC-HUB-003"
    status = 409


class QueueFull(ExchangeError):
    code = "EDOC-HUB-004"
    status = 429

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotARecipient(ExchangeError):
    code = "EDOC-HUB-005"
    status = 403


class StatusOutOfOrder(ExchangeError):
    """A status code that moves backwards, repeats (a replay) or follows 02/06."""

    code = "EDOC-HUB-006"
    status = 409


class ChainMoved(StatusOutOfOrder):
    """Another status of the chain was kept since this one was judged: judge it again."""


class UnknownDocument(ExchangeError):
    code = "EDOC-HUB-007"
    status = 404


class NodeExists(ExchangeError):
    """`edoc hub add-node` for a node the hub already lets in with another token (a new
    one would lock out the node running with the old one, its every request refused), or
    with a token that is another node's."""

    code = "EDOC-HUB-008"
    status = 409


class Unauthenticated(ExchangeError):
    code = "EDOC-AUTH-001"
    status = 401


class Forbidden(ExchangeError):
    code = "EDOC-AUTH-002"
    status = 403


class NotOperator(Unauthenticated):
    """A dashboard page or its data asked without the operator's credential (none, or
    another one: an agency's or a node's token opens no dashboard)."""

    code = "EDOC-AUTH-003"


class NotFound(ExchangeError):
    code = "EDOC-HTTP-404"
    status = 404


class HttpRefusal(InputError):
    """A request refused by aiohttp before any handler (unknown route, wrong method),
    under the code EDOC-HTTP-<status>."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.code = f"EDOC-HTTP-{status}"  # type: ignore[misc]
        self.status = status  # type: ignore[misc]


class StorageError(EdocError):
    """The store failed (disk full, read-only, corrupt); nothing was half-written."""

    code = "EDOC-STORE-001"
    status = 503


class UnknownStore(InputError):
    """A store URL (configuration) this edoc cannot open: an unknown scheme, or no file
    where one is needed."""

    code = "EDOC-STORE-002"


class SystemRefused(EdocError):
    """The operating system refused what a command needs; said with the system's own
    reason (the two common refusals have codes of their own, below)."""

    code = "EDOC-SYS-001"
    status = 500


class PermissionRefused(SystemRefused):
    """A file or folder this user may not read or write."""

    code = "EDOC-SYS-002"


class AddressInUse(SystemRefused):
    """The address a service was told to listen on is taken by another process."""

    code = "EDOC-SYS-003"


class FolderInUse(SystemRefused):
    """The data folder a service was told to use is held by another running service."""

    code = "EDOC-SYS-004"


class NothingDelivered(EdocError):
    """A simulation in which not one document got through (every one refused or lost)."""

    code = "EDOC-SIM-002"
    status = 502


class SomethingLost(EdocError):
    """A simulation in which a document the network accepted never arrived, or a final
    status (02, 06) a recipient's node accepted never reached the sender's node."""

    code = "EDOC-SIM-003"
    status = 502


class BadMultipart(InputError):
    """The agency API's multipart body cannot be read."""

    code = "EDOC-IN-003"


class BadFraming(InputError):
    """A frame body (edoc.framing: a batch of packages, a collect answer) whose layout
    does not hold: another magic, a truncated header, lengths that do not add up."""

    code = "EDOC-IN-004"


class NotMultipart(BadMultipart):
    """A document post whose body is of another media type than multipart/form-data."""

    code = "EDOC-NODE-003"
    status = 415


class EmptyAttachment(AttachmentError):
    """A file part with no bytes: nothing to deliver, almost always a client's mistake."""

    code = "EDOC-NODE-004"
    status = 422


class IdempotencyKeyReused(InputError):
    """An Idempotency-Key given again with other content than its first post."""

    code = "EDOC-NODE-002"
    status = 409


class AgencyExists(InputError):
    """`edoc agency add` for an agency the node already lets in with another token (a new
    one would lock out the software running with the old one, its every request refused),
    or with a token that is another agency's."""

    code = "EDOC-NODE-005"
    status = 409


class HubUnavailable(EdocError):
    """The hub could not be reached or answered 5xx/429; the outbox will retry."""

    code = "EDOC-NODE-001"
    status = 503


class HubUnreachable(HubUnavailable):
    """No connection to the hub at all (refused, reset, timed out), as opposed to a hub
    that answered 5xx or 429."""


class Unreachable(EdocError):
    """No connection to a service at all (refused, reset, timed out)."""

    code = "EDOC-NET-001"
    status = 503


class BadAnswer(EdocError):
    """A service answered with something of the wrong shape (not the JSON it must send)."""

    code = "EDOC-NET-002"
    status = 502


class RemoteError(EdocError):
    """What another edoc service refused with, passed on under that service's own code."""

    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code  # type: ignore[misc]
        self.status = status  # type: ignore[misc]


# --- the non-repudiation archive (edoc.archive) -----------------------------------------
class ArchiveError(InputError):
    """Evidence that does not prove what it claims; the message says which part fails."""

    code = "EDOC-ARC-000"
    status = 422


class BadContainer(ArchiveError):
    """Not an ASiC-E container or day archive of edoc's layout (ZIP, mimetype, manifest)."""

    code = "EDOC-ARC-001"


class EvidenceTampered(ArchiveError):
    """A file whose SHA-256 is not the manifest's, or a file missing from or added to it."""

    code = "EDOC-ARC-002"


class BadTimestamp(ArchiveError):
    """The time-stamp token is unreadable, its signature fails, or it stamps other data."""

    code = "EDOC-ARC-003"


class UntrustedTimestamp(ArchiveError):
    """The token's signer is no time-stamping authority under the given root."""

    code = "EDOC-ARC-004"


class EvidenceSignature(ArchiveError):
    """A package's signature inside the container does not verify at the proven time."""

    code = "EDOC-ARC-005"


class BrokenArchiveChain(ArchiveError):
    """A day archive whose containers or link to the previous day do not match."""

    code = "EDOC-ARC-006"


class NothingToArchive(ArchiveError):
    """No evidence of the document, or of the organization on the day, asked for."""

    code = "EDOC-ARC-007"
    status = 404


class BadRootCertificate(ArchiveError):
    """The root certificate a verifier was given cannot be read."""

    code = "EDOC-ARC-008"

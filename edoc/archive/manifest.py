"""The ASiC manifest (ETSI EN 319 162-1, ``META-INF/ASiCManifest.xml``): the SHA-256 of
every file in a container, and the time-stamp token that covers the manifest itself."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping

from lxml import etree

from edoc import errors, xmlsafe

ASIC = "http://uri.etsi.org/02918/v1.2.1#"
DS = "http://www.w3.org/2000/09/xmldsig#"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
TOKEN_TYPE = "application/vnd.etsi.timestamp-token"  # noqa: S105 - a media type
_NS = {"asic": ASIC, "ds": DS}


def media_type(name: str) -> str:
    if name.endswith(".edxml"):
        return "application/xml"
    if name.endswith(".pem"):
        return "application/x-pem-file"
    if name.endswith(".crl"):
        return "application/pkix-crl"
    if name.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


def build(files: Mapping[str, bytes], token_name: str) -> bytes:
    """The manifest of ``files`` (name → bytes), naming ``token_name`` as its time stamp."""
    return of_digests(
        {name: hashlib.sha256(data).digest() for name, data in files.items()}, token_name
    )


def of_digests(digests: Mapping[str, bytes], token_name: str) -> bytes:
    """The manifest of files given by their SHA-256 digests (name → digest), naming
    ``token_name`` as its time stamp."""
    root = etree.Element(f"{{{ASIC}}}ASiCManifest", nsmap={"asic": ASIC, "ds": DS})
    etree.SubElement(root, f"{{{ASIC}}}SigReference", URI=token_name, MimeType=TOKEN_TYPE)
    for name, digest in digests.items():
        reference = etree.SubElement(
            root, f"{{{ASIC}}}DataObjectReference", URI=name, MimeType=media_type(name)
        )
        etree.SubElement(reference, f"{{{DS}}}DigestMethod", Algorithm=SHA256)
        value = etree.SubElement(reference, f"{{{DS}}}DigestValue")
        value.text = base64.b64encode(digest).decode("ascii")
    manifest: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return manifest


def read(data: bytes, token_name: str) -> dict[str, bytes]:
    """The SHA-256 digest the manifest gives each file; BadContainer if it is not one
    of edoc's manifests (another algorithm, another token, a name twice)."""
    try:
        root = xmlsafe.parse(data)
    except errors.XmlError as exc:
        raise errors.BadContainer(f"the ASiC manifest is not readable XML: {exc.message}") from None
    if root.tag != f"{{{ASIC}}}ASiCManifest":
        raise errors.BadContainer("META-INF/ASiCManifest.xml is not an ASiCManifest")
    tokens = [r.get("URI") for r in root.findall("asic:SigReference", _NS)]
    if tokens != [token_name]:
        raise errors.BadContainer(f"the manifest must name its time stamp {token_name}")
    digests: dict[str, bytes] = {}
    for reference in root.findall("asic:DataObjectReference", _NS):
        name = reference.get("URI") or ""
        algorithm = reference.find("ds:DigestMethod", _NS)
        if algorithm is None or algorithm.get("Algorithm") != SHA256:
            raise errors.BadContainer(f"the manifest's digest of {name} is not SHA-256")
        if name in digests:
            raise errors.BadContainer(f"the manifest names {name} twice")
        try:
            digests[name] = base64.b64decode(
                reference.findtext("ds:DigestValue", "", _NS), validate=True
            )
        except binascii.Error:
            raise errors.BadContainer(f"the manifest's digest of {name} is not base64") from None
    return digests

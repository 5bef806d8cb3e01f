"""Document metadata JSON (agency API ``metadata`` part, ``edoc pack``, ``edoc send``).

The JSON schema in ``schemas/metadata.schema.json`` is the one definition of the
format; this module checks input against it, maps each failure to its stable error
code, and builds the model. Valid metadata is recognised by the schema compiled to
Python (fastjsonschema, several times faster); only what that refuses is judged again by
jsonschema, whose verdict and best-matching error are the answer. Text is normalised to
Unicode NFC on the way in, so the same Vietnamese words always give the same bytes and
the same digests.
"""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema
from jsonschema.exceptions import ValidationError, best_match

from edoc import errors, jsonsafe, resources, xmlsafe
from edoc.model import (
    Attachment,
    Business,
    BusinessDocType,
    Code,
    Document,
    DocumentType,
    Organization,
    Priority,
    Promulgation,
    ResponseFor,
    Signer,
    check_document_id,
    make_document_id,
)
from edoc.orgid import OrgId

MAX_METADATA_BYTES = 1024 * 1024


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_inlined(_schema()))


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.schema("metadata.schema.json").read_text(encoding="utf-8")
    )
    return schema


_DEFS = "#/$defs/"


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with each ``{"$ref": "#/$defs/…"}`` replaced by what it names: the same
    rules and messages, without resolving a reference at every field of every document
    (the larger part of checking a document's metadata). The schema's references do not
    recur."""
    definitions = schema.get("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if len(node) == 1 and isinstance(reference, str) and reference.startswith(_DEFS):
                return inline(definitions[reference.removeprefix(_DEFS)])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    inlined: dict[str, Any] = inline(schema)
    return inlined


# Words that describe a schema and check nothing: left out of the compiled check, whose
# every refusal would otherwise build them into its exception (most of its cost: a string
# recipient is tried against the organization object too, and refused).
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "title", "description"})


def _checks_only(node: Any) -> Any:
    """A schema without its annotations (the names under ``properties`` are kept)."""
    if isinstance(node, list):
        return [_checks_only(item) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key: {name: _checks_only(sub) for name, sub in value.items()}
        if key == "properties"
        else _checks_only(value)
        for key, value in node.items()
        if key not in _ANNOTATIONS
    }


@cache
def _fast_valid() -> Any:
    """The schema as a compiled function: returns for valid metadata, raises otherwise.
    Draft 7 has every keyword this schema uses once its references are inlined. Where it
    is stricter than jsonschema (its ``$`` is the string's very end, not before a final
    newline), the refusal is only judged again; where it would be looser (a tuple taken
    for an array), ``check`` does not ask it (see ``_json_shaped``)."""
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        **_checks_only(_inlined(_schema())),
    }
    return fastjsonschema.compile(
        schema, use_default=False, use_formats=False, detailed_exceptions=False
    )


def _json_shaped(value: Any) -> bool:
    """Built only of what JSON parses to (dict, list, str, numbers, None): true of all
    that ``load`` parses, checked for mappings given to ``check`` directly."""
    if isinstance(value, dict):
        return all(_json_shaped(item) for item in value.values())
    if isinstance(value, list):
        return all(_json_shaped(item) for item in value)
    return value is None or isinstance(value, str | int | float)


def _valid_at_once(data: Any) -> bool:
    try:
        _fast_valid()(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def normalize(value: Any) -> Any:
    """NFC-normalise every string in a JSON value; refuse characters XML cannot carry."""
    if isinstance(value, str):
        return unicodedata.normalize("NFC", xmlsafe.carried(value))
    if isinstance(value, list):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {normalize(key): normalize(item) for key, item in value.items()}
    return value


def load(raw: bytes) -> dict[str, Any]:
    """Parse metadata JSON bytes (UTF-8) into a normalised, schema-valid mapping."""
    if len(raw) > MAX_METADATA_BYTES:
        raise errors.TooLarge(f"metadata larger than {MAX_METADATA_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.BadMetadataJson(f"metadata is not UTF-8 JSON: {exc}") from None
    return _checked(normalize(jsonsafe.read(text, "metadata")), parsed=True)


def check(data: Any) -> dict[str, Any]:
    return _checked(normalize(data), parsed=False)


def _checked(data: Any, parsed: bool) -> dict[str, Any]:
    """``data`` if the schema holds it valid; else the error jsonschema's best match gives.
    Valid by the compiled check is valid by jsonschema (a property test holds it to that)."""
    if (parsed or _json_shaped(data)) and _valid_at_once(data):
        assert isinstance(data, dict)
        return data
    error = best_match(_validator().iter_errors(data))
    if error is not None:
        raise _translate(error)
    assert isinstance(data, dict)
    return data


def _where(error: ValidationError) -> str:
    return "/".join(str(part) for part in error.absolute_path) or "metadata"


def _translate(error: ValidationError) -> errors.EdocError:
    where = _where(error)
    if error.validator == "required":
        return errors.MissingField(f"{where}: {error.message}")
    if error.validator == "additionalProperties":
        return errors.UnknownField(f"{where}: {error.message}")
    if error.validator in ("pattern", "oneOf") and _is_org_field(error):
        return errors.InvalidOrgId(f"{where}: not an organization identifier: {error.instance!r}")
    return errors.InvalidField(f"{where}: {error.message}")


def _is_org_field(error: ValidationError) -> bool:
    field = next((p for p in reversed(error.absolute_path) if isinstance(p, str)), "")
    return field in ("from", "to", "id", "org_id")


# --- mapping → model ---------------------------------------------------------------------
def _date(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise errors.InvalidField(f"{where}: not a date: {text!r}") from None


def _organization(value: str | dict[str, str], where: str) -> Organization:
    fields = {"id": value} if isinstance(value, str) else value
    try:
        OrgId.parse(fields["id"])
    except errors.InvalidOrgId as exc:
        raise errors.InvalidOrgId(f"{where}: {exc.message}") from None
    return Organization(
        org_id=fields["id"],
        name=fields.get("name", ""),
        in_charge=fields.get("in_charge", ""),
        address=fields.get("address", ""),
        email=fields.get("email", ""),
        telephone=fields.get("telephone", ""),
        fax=fields.get("fax", ""),
        website=fields.get("website", ""),
    )


def _recipients(data: dict[str, Any], sender: Organization) -> tuple[Organization, ...]:
    recipients = tuple(_organization(to, f"to/{n}") for n, to in enumerate(data["to"]))
    ids = [to.org_id for to in recipients]
    if len(set(ids)) != len(ids):
        raise errors.InvalidField("to: a recipient is named twice")
    if sender.org_id in ids:
        raise errors.InvalidField("to: the sender cannot be its own recipient")
    return recipients


def to_document(data: dict[str, Any], attachments: tuple[Attachment, ...] = ()) -> Document:
    """Build the document a checked metadata mapping describes."""
    sender = _organization(data["from"], "from")
    code = Code(data["code"]["number"], data["code"]["notation"])
    promulgation = Promulgation(
        data["promulgation"]["place"], _date(data["promulgation"]["date"], "promulgation/date")
    )
    signer = data.get("signer")
    answer = data.get("response_for")
    business = data.get("business", {"type": 0})
    document = Document(
        sender=sender,
        recipients=_recipients(data, sender),
        document_id=data.get("document_id")
        or make_document_id(sender.org_id, promulgation.date, code),
        code=code,
        promulgation=promulgation,
        doc_type=DocumentType(
            data["type"]["code"], data["type"]["name"], data["type"].get("detail")
        ),
        subject=data["subject"],
        content=data.get("content", ""),
        signer=Signer(signer["full_name"], signer.get("position", ""), signer.get("competence", ""))
        if signer
        else None,
        due_date=_date(data["due_date"], "due_date") if "due_date" in data else None,
        to_places=tuple(data.get("to_places", ())),
        priority=Priority(data.get("priority", 0)),
        steering_type=data.get("steering_type", 0),
        response_for=ResponseFor(
            org_id=_organization(answer["org_id"], "response_for/org_id").org_id,
            code=answer["code"],
            promulgation_date=_date(answer["promulgation_date"], "response_for/promulgation_date"),
            document_id=answer["document_id"],
        )
        if answer
        else None,
        business=Business(
            BusinessDocType(business["type"]),
            business.get("reason", ""),
            business.get("document_id", ""),
        ),
        attachments=attachments,
    )
    check_document_id(document)
    return document

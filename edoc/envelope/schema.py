"""The edXML schema check, and the OrganId rules a pattern cannot state."""

from __future__ import annotations

import threading
from functools import cache, lru_cache

from lxml import etree

from edoc import errors, resources
from edoc.envelope.names import q
from edoc.orgid import OrgId

_SCHEMA_BUILD = threading.Lock()


@cache
def _schema() -> etree.XMLSchema:
    # One build at a time: two offload threads building it at once on a fresh node (two
    # first posts 1 ms apart) both failed with libxml2's "xmlSchemaPValAttrNodeValue, the
    # given type is not a built-in type", and so did every build after, until a restart.
    with _SCHEMA_BUILD, resources.schema_file("edxml.xsd") as path:
        return etree.XMLSchema(etree.parse(str(path)))


def validate(root: etree._Element) -> None:
    schema = _schema()
    if not schema.validate(root):
        error = schema.error_log.last_error
        raise errors.SchemaViolation(f"edXML schema: line {error.line}: {error.message}")
    # The schema's pattern checks the form of an OrganId only; the rules of the form
    # (no number 00, no level under an unused one, ASCII digits) need the parser.
    for element in root.iter(q("OrganId")):
        problem = _org_id_problem(element.text or "")
        if problem is not None:
            raise errors.SchemaViolation(f"edXML schema: OrganId: {problem}")


@lru_cache(maxsize=4096)  # a few thousand organizations write to each other, again and again
def _org_id_problem(text: str) -> str | None:
    try:
        OrgId.parse(text)
    except errors.InvalidOrgId as exc:
        return exc.message
    return None

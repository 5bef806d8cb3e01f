"""The agency API as an OpenAPI 3 document (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from edoc.model import AGENCY_CODES
from edoc.node.answers import MAX_DESCRIPTION, MAX_STAFF_FIELD, MAX_STATUSES, STAFF_FIELDS

_CODES = sorted(code.value for code in AGENCY_CODES)
_ERROR = {
    "description": "Refused; body is {error: {code, message}} with a stable code",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": schema or {"type": "object"}}},
    }


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in codes}


def _refused(description: str) -> dict[str, Any]:
    return {**_ERROR, "description": f"Refused: {description}"}


# what any change may answer: nothing of it was kept, and the same request may be made again
_STORE_FAILED = {
    "503": {**_ERROR, "description": "The store failed (EDOC-STORE-001): nothing was kept"}
}


# What POST /api/v1/documents refuses with, by status, and the codes it answers with
_POST_REFUSALS = {
    "400": _refused(
        "metadata missing or invalid (EDOC-ENV-*, EDOC-ORG-001), no body or an unreadable"
        " multipart body (EDOC-IN-003), an unsafe or repeated file name (EDOC-ATT-003), an"
        " Idempotency-Key not 1 to 200 characters (EDOC-ENV-002)"
    ),
    **_errors(401, 403),
    "404": _refused("a revoke/update/replace of a document never sent (EDOC-HUB-007)"),
    "409": _refused(
        "the Idempotency-Key was used before with other content (EDOC-NODE-002; the same"
        " key with the same metadata and files is a retry, answered 202 with the first"
        " document); or this DocumentId was sent already (EDOC-HUB-003)"
    ),
    "413": _refused(
        "the upload or its metadata part is too large, or it has more than 1000 files (the"
        " most attachments a package carries), refused at the first part past them"
        " (EDOC-IN-001)"
    ),
    "415": _refused("the body is not multipart/form-data (EDOC-NODE-003)"),
    "422": _refused(
        "a recipient nobody knows: not an agency of this node, or, in another province,"
        " not in the hub's address book (EDOC-HUB-001; while the node holds no valid copy"
        " of the book the hub judges remote recipients, and refuses them later); a file of"
        " 0 bytes (EDOC-NODE-004)"
    ),
    **_STORE_FAILED,
}


_STATUS: dict[str, Any] = {
    "type": "object",
    "required": ["code"],
    "properties": {
        "code": {"type": "string", "enum": _CODES},
        "description": {"type": "string", "maxLength": MAX_DESCRIPTION},
        "staff": {
            "type": "object",
            "description": "The officer who answers. As in the document metadata, an"
            " unknown field is refused (400 EDOC-ENV-003) and so is a value that is not text"
            " or is longer than 500 characters (400 EDOC-ENV-002), the error naming it"
            " (`staff.phone`)",
            "additionalProperties": False,
            "properties": {
                name: {"type": "string", "maxLength": MAX_STAFF_FIELD} for name in STAFF_FIELDS
            },
        },
    },
}

ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}

# edoc.archive.api: the agency's own document, sent or received, as time-stamped evidence
_EVIDENCE: dict[str, Any] = {
    "get": {
        "summary": "The document's evidence: an ASiC-E container of its packages and"
        " statuses, time-stamped; `edoc archive verify --root` checks it offline",
        "parameters": [ID],
        "responses": {
            "200": {
                "description": "ASiC-E container",
                "content": {"application/vnd.etsi.asic-e+zip": {}},
            },
            **_errors(401, 403, 404),
            "429": _refused(
                "the node builds as many containers as it may at once (EDOC-HUB-004):"
                " ask again after Retry-After"
            ),
            **_errors(503),
        },
    }
}

SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "edoc provincial node: agency API",
        "version": "1",
        "description": "Agencies post documents (edXML, QCVN 102:2016) and read what arrived.",
    },
    "components": {
        "securitySchemes": {"agencyToken": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": {
                "type": "object",
                "required": ["error"],
                "properties": {
                    "error": {
                        "type": "object",
                        "required": ["code", "message"],
                        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                    }
                },
            },
            "Accepted": {
                "type": "object",
                "required": ["id", "document_id", "status"],
                "properties": {
                    "id": {"type": "integer"},
                    "document_id": {"type": "string"},
                    "status": {"type": "string"},
                    "recipients": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "security": [{"agencyToken": []}],
    "paths": {
        "/api/v1/documents": {
            "post": {
                "summary": "Send a document: metadata JSON part + file parts",
                "description": (
                    "Every file part must carry at least one byte: an empty file is refused"
                    " (EDOC-NODE-004), as it is almost always a client's mistake (a file"
                    " not yet written, a wrong path) and would reach the recipient as an"
                    " official attachment with nothing in it."
                ),
                "parameters": [
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
                        "description": (
                            "Makes the post safe to repeat. The same key with the same"
                            " content (the metadata, and each file's name and SHA-256 in"
                            " order) answers the first document again with X-Edoc-Retry:"
                            " true; with other content it is refused (409 EDOC-NODE-002)."
                        ),
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["metadata"],
                                "properties": {
                                    "metadata": {
                                        "type": "string",
                                        "description": "schemas/metadata.schema.json",
                                    },
                                    "file": {"type": "string", "format": "binary"},
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": {
                        **_json("Stored and queued", {"$ref": "#/components/schemas/Accepted"}),
                        "headers": {
                            "X-Edoc-Retry": {
                                "description": "true when this answers a repeated"
                                " Idempotency-Key with the first document",
                                "schema": {"type": "string", "enum": ["true"]},
                            }
                        },
                    },
                    **_POST_REFUSALS,
                },
            }
        },
        "/api/v1/documents/{id}": {
            "get": {
                "summary": "A sent document: per-recipient status with timestamps",
                "parameters": [ID],
                "responses": {"200": _json("The document"), **_errors(401, 403, 404)},
            }
        },
        "/api/v1/inbox": {
            "get": {
                "summary": "Documents received by the agency",
                "parameters": [
                    {
                        "name": "org",
                        "in": "query",
                        "description": "The agency itself (the default): another's is 403",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "since",
                        "in": "query",
                        "description": "ISO time: documents received at or after it",
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "description": "At most this many, oldest first (taken as 1 to 1000)",
                        "schema": {"type": "integer", "default": 100},
                    },
                    {
                        "name": "wait",
                        "in": "query",
                        "description": "Seconds (at most 30) to hold the answer while nothing"
                        " was received after `since`: it comes as soon as a document is"
                        " (a long poll), else empty of news when the wait is over",
                        "schema": {"type": "number", "minimum": 0, "default": 0},
                    },
                ],
                "responses": {"200": _json("Received documents"), **_errors(400, 401, 403)},
            }
        },
        "/api/v1/inbox/{id}": {
            "get": {
                "summary": "One received document",
                "parameters": [ID],
                "responses": {"200": _json("The document"), **_errors(401, 403, 404)},
            }
        },
        "/api/v1/inbox/{id}/package": {
            "get": {
                "summary": "The signed edXML package as received",
                "parameters": [ID],
                "responses": {
                    "200": {"description": "edXML", "content": {"application/xml": {}}},
                    **_errors(401, 403, 404),
                },
            }
        },
        "/api/v1/inbox/{id}/evidence": _EVIDENCE,
        "/api/v1/documents/{id}/evidence": _EVIDENCE,
        "/api/v1/inbox/{id}/attachments/{n}": {
            "get": {
                "summary": "An attachment, streamed",
                "parameters": [
                    ID,
                    {
                        "name": "n",
                        "in": "path",
                        "required": True,
                        "description": "From 0, in the order GET /api/v1/inbox/{id} lists them",
                        "schema": {"type": "integer", "minimum": 0},
                    },
                ],
                "responses": {
                    "200": {
                        "description": "The file, of the type its manifest entry gives"
                        " (application/octet-stream where that is not a media type)",
                        "content": {"*/*": {}},
                    },
                    # 503: a stored package that no longer holds what its entry names
                    **_errors(401, 403, 404, 503),
                },
            }
        },
        "/api/v1/inbox/{id}/status": {
            "post": {
                "summary": f"Answer a received document with status {', '.join(_CODES)}"
                " (signed, relayed)",
                "parameters": [ID],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _STATUS}},
                },
                "responses": {
                    "202": _json("Queued"),
                    **_errors(400, 401, 403, 404, 409),
                    **_STORE_FAILED,
                },
            }
        },
        "/api/v1/inbox/statuses": {
            "post": {
                "summary": f"Several statuses at once ({MAX_STATUSES} at most), about one"
                " received document or several: each signed and relayed as if posted alone,"
                " in the order given, all or none. A refusal's message names the entry"
                " (statuses[n])",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["statuses"],
                                "properties": {
                                    "statuses": {
                                        "type": "array",
                                        "minItems": 1,
                                        "maxItems": MAX_STATUSES,
                                        "items": {
                                            **_STATUS,
                                            "required": ["id", "code"],
                                            "properties": {
                                                "id": {
                                                    "type": "integer",
                                                    "description": "The inbox item's id",
                                                },
                                                **_STATUS["properties"],
                                            },
                                        },
                                    }
                                },
                            }
                        }
                    },
                },
                "responses": {
                    "202": _json("Queued: {statuses: [{id, inbox_id, code}]}, in the order given"),
                    **_errors(400, 401, 403, 404, 409),
                    **_STORE_FAILED,
                },
            }
        },
        "/api/v1/stats": {
            "get": {
                "summary": "Sent/received counts by agency, partner province and day",
                "description": "Its shares are null where there is nothing to judge:"
                " `share_signed` with nothing sent, `share_delivered` with no recipient,"
                " `on_time_share` (of the recipients of documents with a due date that"
                " completed, 06, those that did on or before it) while none has completed",
                "security": [],
                "responses": {"200": _json("Statistics")},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document",
                "security": [],
                "responses": {"200": _json("OpenAPI 3")},
            }
        },
        "/healthz": {
            "get": {
                "security": [],
                "responses": {
                    "200": _json(
                        "Healthy: the store answers (store: ok); address_book is the hub's"
                        " address book held ({version, expires}), or null when the node"
                        " holds no valid copy and leaves remote recipients to the hub"
                    ),
                    "503": {**_ERROR, "description": "The store does not answer (EDOC-STORE-001)"},
                },
            }
        },
        "/metrics": {
            "get": {
                "security": [],
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    },
}

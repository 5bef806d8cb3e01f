"""The agency API as an OpenAPI 3 document (served at /api/v1/openapi.json)."""

from __future__ import annotations

from typing import Any

from edoc.model import AGENCY_CODES

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


ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}

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
                "parameters": [
                    {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}
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
                    "202": _json("Stored and queued", {"$ref": "#/components/schemas/Accepted"}),
                    **_errors(400, 401, 403, 404, 409, 413, 422),
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
                    {"name": "org", "in": "query", "schema": {"type": "string"}},
                    {"name": "since", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
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
        "/api/v1/inbox/{id}/attachments/{n}": {
            "get": {
                "summary": "An attachment, streamed",
                "parameters": [
                    ID,
                    {"name": "n", "in": "path", "required": True, "schema": {"type": "integer"}},
                ],
                "responses": {
                    "200": {"description": "The file", "content": {"*/*": {}}},
                    **_errors(401, 403, 404),
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
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["code"],
                                "properties": {
                                    "code": {
                                        "type": "string",
                                        "enum": _CODES,
                                    },
                                    "description": {"type": "string"},
                                    "staff": {"type": "object"},
                                },
                            }
                        }
                    },
                },
                "responses": {"202": _json("Queued"), **_errors(400, 401, 403, 404, 409)},
            }
        },
        "/api/v1/stats": {
            "get": {
                "summary": "Sent/received counts by agency, partner province and day",
                "security": [],
                "responses": {"200": _json("Statistics")},
            }
        },
        "/healthz": {"get": {"security": [], "responses": {"200": _json("Healthy")}}},
        "/metrics": {
            "get": {
                "security": [],
                "responses": {"200": {"description": "Prometheus text format"}},
            }
        },
    },
}

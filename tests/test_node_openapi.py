"""The OpenAPI document served at /api/v1/openapi.json describes what the node serves."""

from __future__ import annotations

from pathlib import Path

from edoc.node import openapi
from edoc.node.app import create_app
from edoc.node.state import NodeConfig


def _served(tmp_path: Path) -> set[tuple[str, str]]:
    """(path, method) of every route of a node's app outside the operator's dashboard (the
    app is built, not started: nothing is opened)."""
    config = NodeConfig("H53", tmp_path, tmp_path / "keys", "http://127.0.0.1:1", "token")
    app = create_app(config)
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
        and not route.resource.canonical.startswith("/dashboard")
        and route.method != "HEAD"  # aiohttp adds one beside each GET
    }


def test_every_route_of_the_agency_api_is_in_the_openapi_document(tmp_path: Path) -> None:
    described = {(path, method) for path, item in openapi.SPEC["paths"].items() for method in item}
    assert _served(tmp_path) == described


def test_the_status_staff_fields_are_described() -> None:
    """edoc.node.answers keeps department, name, email and mobile of `staff`: a client
    reading the document alone must be able to send them."""
    status = openapi.SPEC["paths"]["/api/v1/inbox/{id}/status"]["post"]
    schema = status["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]["staff"]["properties"]) == {
        "department",
        "name",
        "email",
        "mobile",
    }

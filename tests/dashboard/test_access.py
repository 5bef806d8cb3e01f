"""Only the operator sees a dashboard: its pages and data refuse anyone else with a
stable code, and the login form sets a cookie no page script can read."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from edoc.dashboard import auth
from tests.dashboard.support import NGHE_AN, NODE_TOKEN, OPERATOR, TAY_NINH, hub
from tests.support.hub import document

REFUSED = (401, "EDOC-AUTH-003")


async def test_data_without_credential_is_refused(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        status, body = await running.get("/dashboard/api/overview", token=None)
    assert (status, body["error"]["code"]) == REFUSED


async def test_data_with_a_node_token_is_refused(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        status, body = await running.get("/dashboard/api/overview", token=NODE_TOKEN)
    assert (status, body["error"]["code"]) == REFUSED


async def test_closed_without_an_operator_credential_configured(tmp_path: Path) -> None:
    async with hub(tmp_path, operator=None) as running:
        status, body = await running.get("/dashboard/api/overview", token="")
        assert (status, body["error"]["code"]) == REFUSED
        status, body = await running.get("/dashboard/api/overview", token="None")
    assert (status, body["error"]["code"]) == REFUSED


async def test_page_without_credential_goes_to_the_login_form(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        async with running.client.get("/dashboard/", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/dashboard/login"
        status, page = await running.get("/dashboard/login", token=None)
    assert status == 200 and 'name="token"' in page


async def test_login_sets_an_http_only_strict_cookie_that_opens_the_data(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        async with running.client.post(
            "/dashboard/login", data={"token": OPERATOR}, allow_redirects=False
        ) as response:
            assert response.status == 303
            cookie = response.cookies[auth.COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert cookie.value != OPERATOR  # a derived value, not the credential
        async with running.client.get("/dashboard/api/overview") as response:
            assert response.status == 200  # the client kept the cookie


async def test_wrong_login_is_refused_and_sets_no_cookie(tmp_path: Path) -> None:
    login = {"token": NODE_TOKEN}
    async with (
        hub(tmp_path) as running,
        running.client.post("/dashboard/login", data=login) as response,
    ):
        page = await response.text()
        assert response.status == 401
        assert auth.COOKIE not in response.cookies
    assert "EDOC-AUTH-003" in page


async def test_a_forged_cookie_is_refused(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        running.client.session.cookie_jar.update_cookies({auth.COOKIE: auth.session_value("x")})
        status, body = await running.get("/dashboard/api/overview", token=None)
    assert (status, body["error"]["code"]) == REFUSED


async def test_page_is_served_as_utf8_with_a_strict_policy(tmp_path: Path) -> None:
    async with (
        hub(tmp_path) as running,
        running.client.get(
            "/dashboard/", headers={"Authorization": f"Bearer {OPERATOR}"}
        ) as response,
    ):
        page = await response.text()
        assert response.headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert "Trục liên thông văn bản quốc gia" in page


async def test_every_dashboard_answer_carries_the_security_headers(tmp_path: Path) -> None:
    """Not the pages alone: the JSON data, the refusals and the envelope downloads too
    (a browser must never guess an envelope's or an answer's type, nor cache them)."""
    today = dt.datetime.now(dt.UTC).date()
    async with hub(tmp_path) as running:
        small = document(running.ca, [NGHE_AN], sender=TAY_NINH)
        large = document(running.ca, [NGHE_AN], sender=TAY_NINH, files={"a.pdf": b"%" * 500_000})
        for package in (small, large):
            assert await running.post_package(package) == 202
        _, found = await running.get(f"/dashboard/api/documents?org_id={NGHE_AN}&day={today}")
        delivery_ids = [d["hops"][0]["delivery_id"] for d in found["documents"]]
        answers = [
            ("/dashboard/", OPERATOR, 200),
            ("/dashboard", OPERATOR, 303),
            ("/dashboard/login", None, 200),
            ("/dashboard/static/dashboard.js", None, 200),
            ("/dashboard/api/overview", OPERATOR, 200),
            ("/dashboard/api/overview", None, 401),
            (f"/dashboard/api/documents?org_id={NGHE_AN}&day={today}", OPERATOR, 200),
            (
                f"/dashboard/api/trace?document_id={found['documents'][0]['document_id']}",
                OPERATOR,
                200,
            ),
            *((f"/dashboard/api/envelope?delivery_id={i}", OPERATOR, 200) for i in delivery_ids),
            ("/dashboard/api/envelope?delivery_id=999", OPERATOR, 404),
        ]
        for path, token, status in answers:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            async with running.client.get(path, headers=headers, allow_redirects=False) as response:
                await response.read()
                assert response.status == status, path
                missing = {k: v for k, v in HEADERS.items() if response.headers.get(k) != v}
                assert not missing, (path, missing)
    assert len(delivery_ids) == 2  # one kept in the store, one in a file of its own


HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

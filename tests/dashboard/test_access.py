"""Only the operator sees a dashboard: its pages and data refuse anyone else with a
stable code, and the login form sets a cookie no page script can read."""

from __future__ import annotations

from pathlib import Path

from edoc.dashboard import auth
from tests.dashboard.support import NODE_TOKEN, OPERATOR, hub

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

"""Who may see a dashboard: the operator, with the credential `edoc up` writes to
network.json (``operator.token``) and gives the hub and every node in their environment.

A script sends it as ``Authorization: Bearer <token>``; a browser logs in once with a form
and then carries a cookie (HttpOnly: no page script reads it; SameSite=Strict: no other
site's page makes the browser send it, so the retry action needs no CSRF token). The
cookie holds a value derived from the credential, not the credential itself.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from aiohttp import web

from edoc import errors

COOKIE = "edoc_operator"
VARIABLE = "EDOC_OPERATOR_TOKEN"  # where the services read the credential
PREFIX = "/dashboard/"


def session_value(token: str) -> str:
    """What the login cookie carries for ``token``."""
    return hmac.new(token.encode(), b"edoc dashboard session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Operator:
    """The credential a service admits to its dashboard; None: the dashboard is closed."""

    token: str | None

    def admits(self, request: web.Request) -> bool:
        if not self.token:
            return False
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and _same(header.removeprefix("Bearer "), self.token):
            return True
        cookie = request.cookies.get(COOKIE)
        return cookie is not None and _same(cookie, session_value(self.token))

    def check(self, request: web.Request) -> None:
        """Refuse (EDOC-AUTH-003) a request that does not carry the operator's credential."""
        if not self.admits(request):
            raise errors.NotOperator("the dashboard needs the operator credential")

    def log_in(self, given: str, secure: bool) -> web.Response:
        """The answer to a login form: to the dashboard with the cookie, or refused."""
        if not self.token or not _same(given, self.token):
            raise errors.NotOperator("not the operator credential")
        response = web.Response(status=303, headers={"Location": PREFIX})
        response.set_cookie(
            COOKIE,
            session_value(self.token),
            path=PREFIX,
            httponly=True,
            samesite="Strict",
            secure=secure,
        )
        return response

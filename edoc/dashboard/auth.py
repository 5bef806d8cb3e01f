"""Who may see a dashboard: the operator, with the credential `edoc up` writes to
network.json (``operator.token``) and gives the hub and every node in their environment.

A script sends it as ``Authorization: Bearer <token>``; a browser logs in once with a form
and then carries a cookie (HttpOnly: no page script reads it; SameSite=Strict: no other
site's page makes the browser send it). The cookie holds a value derived from the
credential, not the credential itself. A site is a domain whatever its port and
subdomain, though: every service on 127.0.0.1 (`edoc up`'s hub and nodes), every
province's node under one national domain is the same site. So a change the cookie asks
for (the retry actions: a POST) must also come from the dashboard's own page, as the
browser's ``Origin`` says; a script's Bearer credential no other page can send.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

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


SAFE_METHODS = frozenset({"GET", "HEAD"})  # what only reads: a page or its data
DEFAULT_PORTS = {"http": 80, "https": 443}  # of the schemes a dashboard's page is served by


def _from_own_page(request: web.Request) -> bool:
    """A reading request, or a change whose Origin is this service (its host and port,
    as the browser addressed it: the Host header)."""
    if request.method in SAFE_METHODS:
        return True
    origin = urlsplit(request.headers.get("Origin", ""))
    if origin.scheme not in DEFAULT_PORTS:  # "null", none, or not a web page's
        return False
    said = _address(origin, origin.scheme)
    return said is not None and said == _address(urlsplit(f"//{request.host}"), origin.scheme)


def _address(url: SplitResult, scheme: str) -> tuple[str, int] | None:
    """The host (without regard to case) and port ``url`` names, None when no host. Its
    port is the ``scheme``'s when it says none: a browser leaves that out of an Origin
    and a Host header, a proxy in front of the service may write it in."""
    try:
        port = url.port
    except ValueError:  # not a number
        return None
    if not url.hostname:
        return None
    return url.hostname, DEFAULT_PORTS[scheme] if port is None else port


@dataclass(frozen=True)
class Operator:
    """The credential a service admits to its dashboard; None: the dashboard is closed."""

    token: str | None

    def admits(self, request: web.Request) -> bool:
        try:
            self.check(request)
        except errors.NotOperator:
            return False
        return True

    def _credential(self, request: web.Request) -> str | None:
        """How ``request`` carries the operator's credential: "bearer", "cookie", or None."""
        if not self.token:
            return None
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and _same(header.removeprefix("Bearer "), self.token):
            return "bearer"
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and _same(cookie, session_value(self.token)):
            return "cookie"
        return None

    def check(self, request: web.Request) -> None:
        """Refuse (EDOC-AUTH-003) a request that does not carry the operator's credential,
        or a change that carries it in the cookie from a page of another site."""
        found = self._credential(request)
        if found is None:
            raise errors.NotOperator("the dashboard needs the operator credential")
        if found == "cookie" and not _from_own_page(request):
            raise errors.NotOperator(
                "a change asked from a page of another site (or of none): the dashboard's"
                " own page sends its Origin"
            )

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

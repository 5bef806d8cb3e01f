"""The operator's dashboards: the hub's national view (:mod:`edoc.dashboard.hub`) and a
node's province view (:mod:`edoc.dashboard.node`).

Pages are rendered on the server (jinja2, templates/) and then keep themselves current by
polling their JSON data every few seconds (static/dashboard.js); the chart library
(Chart.js, MIT) ships in static/, so nothing is fetched from outside. Every page and every
data endpoint needs the operator's credential (:mod:`edoc.dashboard.auth`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from edoc import errors
from edoc.dashboard import auth
from edoc.dashboard.auth import PREFIX, Operator

HERE = Path(__file__).parent
OPERATOR = web.AppKey("operator", Operator)
POLL_MILLISECONDS = 2000  # how often an open page asks for its data again
TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
# Every dashboard answer carries them (secured: pages, JSON data, refusals, downloads):
# the pages load only their own scripts and styles; no other site may frame them; a
# browser takes each answer as the type it says (an envelope's XML, an error's JSON) and
# guesses none; nothing an operator saw is kept in a cache.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
Overview = Callable[[web.Request], Awaitable[dict[str, Any]]]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def render(template: str, status: int = 200, **context: Any) -> web.Response:
    html = TEMPLATES.get_template(template).render(prefix=PREFIX, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _is_dashboard(request: web.Request) -> bool:
    return request.path.startswith(PREFIX) or request.path == PREFIX.rstrip("/")


async def secured(request: web.Request, response: web.StreamResponse) -> None:
    """HEADERS on every answer under the dashboard's prefix, as it is sent: whichever
    handler made it, or the service's middleware from a refusal (one place, so a route
    added later cannot be without them). A header the answer set itself is kept."""
    if _is_dashboard(request):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)


def install(app: web.Application, operator: Operator, view: str, overview: Overview) -> None:
    """The routes every dashboard has: the page, its data, login and logout, static files.
    ``view`` names the page's template ("hub" or "node")."""
    app[OPERATOR] = operator
    app.on_response_prepare.append(secured)

    async def page(request: web.Request) -> web.StreamResponse:
        if not request.app[OPERATOR].admits(request):
            return web.Response(status=303, headers={"Location": f"{PREFIX}login"})
        data = await overview(request)
        return render(f"{view}.html", data=data, view=view, interval=POLL_MILLISECONDS)

    async def data(request: web.Request) -> web.Response:
        request.app[OPERATOR].check(request)
        return web.json_response(await overview(request))

    async def login_form(_request: web.Request) -> web.Response:
        return render("login.html", view=view, error=None)

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        given = form.get("token")
        try:
            return request.app[OPERATOR].log_in(
                given if isinstance(given, str) else "", request.secure
            )
        except errors.NotOperator as exc:
            return render("login.html", status=exc.status, view=view, error=exc)

    async def logout(_request: web.Request) -> web.Response:
        response = web.Response(status=303, headers={"Location": f"{PREFIX}login"})
        response.del_cookie(auth.COOKIE, path=PREFIX)
        return response

    async def to_page(_request: web.Request) -> web.Response:
        return web.Response(status=303, headers={"Location": PREFIX})

    app.router.add_get(PREFIX.rstrip("/"), to_page)
    app.router.add_get(PREFIX, page)
    app.router.add_get(f"{PREFIX}api/overview", data)
    app.router.add_get(f"{PREFIX}login", login_form)
    app.router.add_post(f"{PREFIX}login", login)
    app.router.add_post(f"{PREFIX}logout", logout)
    app.router.add_static(f"{PREFIX}static/", HERE / "static")

"""URLs as messages and logs say them: never with a password.

A hub's or a node's URL (``https://user:password@host``), a database's
(``postgresql://user:password@host/db``, ``?password=``) may carry a secret, and what edoc
prints or logs is read by others: a terminal, a CI log, a document's ``last_error``.
"""

from __future__ import annotations

import re

_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&#]*")


def without_password(url: str) -> str:
    """``url`` with its password as ``***``: after ``user:`` and in a ``password=``
    parameter. Read by hand, not by urllib: a URL to be said is often one urllib cannot
    read (a port out of range), or reads otherwise (a ``/``, ``#`` or ``?`` in the
    password ends its userinfo, and the password became the port), so the userinfo is
    whatever comes before the last ``@`` (a password may hold one; urllib says so too)."""
    url = _QUERY_PASSWORD.sub("***", url)
    scheme, separator, rest = url.partition("://")
    if not separator:  # no scheme (``user:password@host``): still a userinfo
        scheme, rest = "", url
    userinfo, at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not (at and colon):
        return url
    return f"{scheme}{separator}{user}:***@{host}"

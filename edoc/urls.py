"""URLs as messages and logs say them: never with a password.

A hub's or a node's URL (``https://user:password@host``, or a token as the whole userinfo:
``https://TOKEN@host``), a database's (``postgresql://user:password@host/db``,
``?password=``) may carry a secret, and what edoc prints or logs is read by others: a
terminal, a CI log, a document's ``last_error``.
"""

from __future__ import annotations

import re

_QUERY_PASSWORD = re.compile(r"(?<=[?&]password=)[^&#]*")

# where a userinfo without a colon is a role's name (libpq reads no token there), said as
# it helps to know which role could not connect; elsewhere it is hidden, as it is often a
# token (``https://TOKEN@host``, as git and many HTTP clients send it)
POSTGRESQL_SCHEMES = ("postgresql", "postgres")


def without_password(url: str) -> str:
    """``url`` with its password as ``***``: after ``user:``, in a ``password=``
    parameter, and a userinfo without a colon (a token) but in a database's URL. Read by
    hand, not by urllib: a URL to be said is often one urllib cannot read (a port out of
    range), or reads otherwise (a ``/``, ``#`` or ``?`` in the password ends its
    userinfo, and the password became the port), so the userinfo is whatever comes before
    the last ``@`` (a password may hold one; urllib says so too)."""
    url = _QUERY_PASSWORD.sub("***", url)
    scheme, separator, rest = url.partition("://")
    if not separator:  # no scheme (``user:password@host``): still a userinfo
        scheme, rest = "", url
    userinfo, _at, host = rest.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if not userinfo or (not colon and scheme.lower() in POSTGRESQL_SCHEMES):
        return url
    said = f"{user}:***" if colon else "***"
    return f"{scheme}{separator}{said}@{host}"

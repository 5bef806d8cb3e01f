"""URLs as messages and logs say them: never with a password."""

from __future__ import annotations

import pytest

from edoc.urls import without_password


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("postgresql://edoc@db/hub", "postgresql://edoc@db/hub"),
        ("postgresql://edoc:s3cret@db:5432/hub", "postgresql://edoc:***@db:5432/hub"),
        ("postgres://db/hub?user=edoc&password=s3cret", "postgres://db/hub?user=edoc&password=***"),
        ("postgresql:///hub?host=/run/postgresql", "postgresql:///hub?host=/run/postgresql"),
        ("https://127.0.0.1:8701", "https://127.0.0.1:8701"),
        ("https://admin:s3cret@hub.example", "https://admin:***@hub.example"),
        ("https://:s3cret@hub.example/", "https://:***@hub.example/"),
        # what urllib would read otherwise: the '/', '#', '?' or '@' end its userinfo
        ("https://admin:s3/cr#e?t@hub.example:8700", "https://admin:***@hub.example:8700"),
        ("https://admin:s3@cret@hub.example", "https://admin:***@hub.example"),
        ("admin:s3cret@127.0.0.1:8701", "admin:***@127.0.0.1:8701"),  # no scheme
        # a token as the whole userinfo: hidden whole, but a database's role is a name
        ("https://t0ken@hub.example:8700", "https://***@hub.example:8700"),
        ("HTTP://t0k/en@127.0.0.1:8701/", "HTTP://***@127.0.0.1:8701/"),
        ("t0ken@127.0.0.1:8701", "***@127.0.0.1:8701"),  # no scheme
        ("postgres://edoc@db/hub", "postgres://edoc@db/hub"),
    ],
)
def test_a_url_is_said_without_its_password(url: str, said: str) -> None:
    assert without_password(url) == said

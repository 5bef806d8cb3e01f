"""`edoc up` creates the operator's credential once, keeps it in network.json (0600), and
gives it to the services in their environment, never on their command lines."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from edoc import network


def test_the_credential_is_planned_kept_and_added_to_an_older_network(tmp_path: Path) -> None:
    planned = network.plan(tmp_path, ["H53"], 23500, tls=False)
    token = planned.spec["operator"]["token"]
    assert len(token) >= 40
    assert stat.S_IMODE(planned.path.stat().st_mode) == 0o600
    assert network.plan(tmp_path, ["H53"], 23500, tls=False).spec["operator"]["token"] == token
    older = {k: v for k, v in planned.spec.items() if k != "operator"}  # before dashboards
    planned.path.write_text(json.dumps(older), encoding="utf-8")
    again = network.plan(tmp_path, ["H53"], 23500, tls=False)
    saved = json.loads(again.path.read_text(encoding="utf-8"))
    assert saved["operator"]["token"] == again.spec["operator"]["token"] != token
    assert all(token not in " ".join(command) for _, command in network.commands(planned))


def test_every_dashboard_address_is_listed(tmp_path: Path) -> None:
    planned = network.plan(tmp_path, ["H53", "H34"], 23500, tls=True)
    assert network.dashboards(planned) == [
        ("hub", "https://127.0.0.1:23500/dashboard/"),
        ("node H53", "http://127.0.0.1:23501/dashboard/"),
        ("node H34", "http://127.0.0.1:23502/dashboard/"),
    ]

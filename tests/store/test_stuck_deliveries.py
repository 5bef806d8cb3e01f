"""A delivery a node collects again and again without acknowledging it: still owed, never
dropped, but counted as stuck where the operator looks (the hub's statistics, /metrics,
the dashboard) and logged once, on the collect that makes it stuck. On a real hub, on
each backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from structlog.testing import capture_logs

from edoc.store.hub import STUCK_AFTER, HubStore
from tests.dashboard.support import NGHE_AN, NGHE_AN_TOKEN, TAY_NINH, Hub, hub
from tests.support.hub import document


async def _collect(running: Hub) -> list[dict[str, Any]]:
    """One collect by Nghệ An's node, acknowledging nothing."""
    headers = {"Authorization": f"Bearer {NGHE_AN_TOKEN}"}
    async with running.client.get("/api/v1/deliveries", headers=headers) as response:
        assert response.status == 200
        found: list[dict[str, Any]] = (await response.json())["deliveries"]
        return found


async def _stuck_seen(running: Hub) -> tuple[Any, ...]:
    """The stuck deliveries as the statistics, /metrics and the dashboard say them."""
    status, report = await running.get("/api/v1/stats", token=None)
    assert status == 200, report
    status, metrics = await running.get("/metrics", token=None)
    assert status == 200, metrics
    (gauge,) = [
        float(line.split()[1])
        for line in metrics.splitlines()
        if line.startswith("edoc_hub_deliveries_stuck ")
    ]
    status, overview = await running.get("/dashboard/api/overview")
    assert status == 200, overview
    rows = {row["code"]: row["stuck"] for row in overview["provinces"]}
    alerts = [alert["text"] for alert in overview["alerts"] if alert["what"] == "stuck"]
    status, page = await running.get("/dashboard/")  # rendered on the server, as first seen
    assert status == 200
    card = f'data-total="stuck">{overview["totals"]["stuck"]}</span>'
    assert card in page and f"collected {STUCK_AFTER} times" in page, page
    return (
        report["stuck"],
        report["stuck_by_node"],
        gauge,
        rows.get("H41"),
        overview["totals"]["stuck"],
        len(alerts),
    )


NONE_STUCK: tuple[Any, ...] = (0, {}, 0.0, 0, 0, 0)
ONE_STUCK: tuple[Any, ...] = (1, {"H41": 1}, 1.0, 1, 1, 1)


async def test_a_delivery_collected_again_and_again_unacknowledged_is_shown_stuck(
    hub_store: HubStore, store_urls: dict[str, str], tmp_path: Path
) -> None:
    """Its lease runs out at once (a visibility of 0), so each collect offers it again;
    it stays owed: acknowledged at last, it is delivered and no longer stuck."""
    async with hub(tmp_path, store_url=store_urls["hub"], visibility=0) as running:
        package = document(running.ca, [NGHE_AN], sender=TAY_NINH)
        assert await running.post_package(package) == 202
        for _ in range(STUCK_AFTER - 1):
            (offered,) = await _collect(running)
        assert offered["attempts"] == STUCK_AFTER - 1
        assert await _stuck_seen(running) == NONE_STUCK
        with capture_logs() as logs:
            (offered,) = await _collect(running)  # the N-th
            (again,) = await _collect(running)  # still offered: nothing is dropped
        assert (offered["attempts"], again["attempts"]) == (STUCK_AFTER, STUCK_AFTER + 1)
        warned = [line for line in logs if line["log_level"] == "warning"]
        assert [(w["delivery"], w["node"], w["kind"]) for w in warned] == [
            (offered["id"], "H41", "document")
        ]  # once, on the N-th collect
        assert NGHE_AN_TOKEN not in repr(warned)
        assert await _stuck_seen(running) == ONE_STUCK
        headers = {"Authorization": f"Bearer {NGHE_AN_TOKEN}"}
        ids = {"ids": [offered["id"]]}
        async with running.client.post("/api/v1/deliveries/ack", json=ids, headers=headers) as ok:
            assert ok.status == 200
        assert await _stuck_seen(running) == NONE_STUCK
        assert await _collect(running) == []

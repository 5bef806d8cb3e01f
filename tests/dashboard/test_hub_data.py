"""The hub's dashboard data: what the hub counted, queued, refused and saw polling, and
the certificates about to expire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.support import NGHE_AN, NODE_TOKEN, TAY_NINH, Hub, hub
from tests.support.hub import document

OVERVIEW = "/dashboard/api/overview"


def row(data: dict[str, Any], code: str) -> dict[str, Any]:
    (found,) = [r for r in data["provinces"] if r["code"] == code]
    result: dict[str, Any] = found
    return result


async def overview(running: Hub, query: str = "") -> dict[str, Any]:
    status, data = await running.get(f"{OVERVIEW}{query}")
    assert status == 200, data
    result: dict[str, Any] = data
    return result


async def test_a_document_counts_for_its_sender_and_waits_in_its_recipients_queue(
    tmp_path: Path,
) -> None:
    async with hub(tmp_path) as running:
        before = await overview(running)
        assert await running.post_package(document(running.ca, [NGHE_AN], sender=TAY_NINH)) == 202
        after = await overview(running)
    assert before["provinces"] == []
    tay_ninh, nghe_an = row(after, "H53"), row(after, "H41")
    assert (tay_ninh["sent_today"], tay_ninh["sent"]) == (1, 1)
    assert tay_ninh["name"] == "UBND tỉnh Tây Ninh"  # from the address book, in Vietnamese
    assert (nghe_an["queue"], nghe_an["received"]) == (1, 0)
    assert after["totals"]["sent_today"] == 1 and after["totals"]["queue"] == 1
    assert after["traffic"]["series"]["sent"][-1] == 1  # today is the last day


async def test_a_province_renamed_in_the_address_book_shows_its_new_name(
    tmp_path: Path,
) -> None:
    """The names are kept by the book's version: a registration that changes one is seen."""
    async with hub(tmp_path) as running:
        assert await running.post_package(document(running.ca, [NGHE_AN], sender=TAY_NINH)) == 202
        assert row(await overview(running), "H53")["name"] == "UBND tỉnh Tây Ninh"
        renamed = {"organizations": [{"org_id": TAY_NINH, "name": "Tỉnh Tây Ninh (mới)"}]}
        headers = {"Authorization": f"Bearer {NODE_TOKEN}"}
        async with running.client.post("/api/v1/directory", json=renamed, headers=headers) as ok:
            assert ok.status == 200
        assert row(await overview(running), "H53")["name"] == "Tỉnh Tây Ninh (mới)"


async def test_a_refusal_is_counted_under_its_code(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        tampered = document(running.ca, [NGHE_AN], sender=TAY_NINH).replace(b"V/v", b"V/V", 1)
        assert await running.post_package(tampered) == 422
        data = await overview(running)
    assert data["refusals"] == {"EDOC-SIG-002": 1}
    assert row(data, "H53")["refused_by_code"] == {"EDOC-SIG-002": 1}


async def test_a_refusal_claiming_a_sender_of_another_province_counts_for_its_node(
    tmp_path: Path,
) -> None:
    """Tây Ninh's node may send for Tây Ninh alone: a claim of Nghệ An's sender is not
    believed, or any node could fill the statistics with an organization per package."""
    async with hub(tmp_path) as running:
        forged = document(running.ca, [TAY_NINH], sender=NGHE_AN)
        assert await running.post_package(forged) in (403, 422)  # by Tây Ninh's node
        data = await overview(running)
    assert row(data, "H53")["refused"] == 1
    assert all(r["refused"] == 0 for r in data["provinces"] if r["code"] != "H53")


async def test_a_poll_is_seen(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        await running.poll()
        data = await overview(running)
    assert row(data, "H53")["last_poll_seconds"] == 0
    assert not [a for a in data["alerts"] if a["what"] == "polling"]


async def test_a_certificate_near_its_end_is_an_alert(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        assert not (await overview(running))["alerts"]
        running.ca.keys.issue(TAY_NINH, org_name="UBND tỉnh Tây Ninh", days=10)
        data = await overview(running)
    (alert,) = data["alerts"]
    assert alert["what"] == "certificate" and alert["level"] == "warning"
    assert TAY_NINH in alert["text"] and "UBND tỉnh Tây Ninh" in alert["text"]
    soonest = data["certificates"][0]
    assert (soonest["org_id"], soonest["warning"]) == (TAY_NINH, True)
    assert 9 < soonest["days_left"] <= 10
    assert data["crl_age_hours"] is not None


async def test_the_traffic_chart_filters_by_province_and_period(tmp_path: Path) -> None:
    async with hub(tmp_path) as running:
        await running.post_package(document(running.ca, [NGHE_AN], sender=TAY_NINH))
        other = await overview(running, "?province=H41&days=30")
        own = await overview(running, "?province=H53")
    assert len(other["traffic"]["days"]) == 30 and sum(other["traffic"]["series"]["sent"]) == 0
    assert sum(own["traffic"]["series"]["sent"]) == 1
    assert other["filters"]["province"] == "H41"


@pytest.mark.parametrize("query", ["?days=8", "?province=nowhere"])
async def test_a_bad_filter_is_refused(tmp_path: Path, query: str) -> None:
    async with hub(tmp_path) as running:
        status, body = await running.get(f"{OVERVIEW}{query}")
    assert status == 400 and body["error"]["code"] in ("EDOC-ENV-002", "EDOC-ORG-001")


async def test_a_certificate_is_shown_by_its_whole_serial_as_keys_list_says_it(
    tmp_path: Path,
) -> None:
    """The dashboard showed 12 digits of a serial, `keys list` all of it: an operator could
    not tell which certificate a row was, nor give it to `keys revoke`."""
    async with hub(tmp_path) as running:
        issued = running.ca.keys.issue(TAY_NINH, org_name="UBND tỉnh Tây Ninh", days=10)
        data = await overview(running)
        status, page = await running.get("/dashboard/")
    assert status == 200
    assert issued.shown_serial in [c["serial"] for c in data["certificates"]]
    assert f'<td class="serial">{issued.shown_serial}</td>' in page

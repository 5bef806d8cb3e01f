"""The dashboards in a real headless Chromium (Debian's, driven by Playwright), on a real
network of processes: refused without the credential, the login, numbers that move while
documents flow, a certificate warning, the node's view and its retry action.

With EDOC_SCREENSHOTS=DIR the screenshots of both dashboards are also kept in DIR (the
README's come from `EDOC_SCREENSHOTS=docs`)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from edoc.keystore import KeyStore
from tests.support.network import LocalNetwork, metadata

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; .ci/run installs it
TAY_NINH_AGENCY, KON_TUM_AGENCY = "000.00.07.H53", "000.00.07.H34"
WAIT_MS = 15_000  # for what the page shows after a poll or two


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    network = LocalNetwork(tmp_path_factory.mktemp("net"), ["H53", "H34"]).start()
    yield network
    network.stop()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    assert CHROMIUM.exists(), "the browser tests need Debian's chromium: apt-get install chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield launched
        await launched.close()


def operator(net: LocalNetwork) -> str:
    token: str = net.spec["operator"]["token"]
    return token


async def log_in(page: Page, dashboard: str, token: str) -> None:
    await page.goto(dashboard)
    await expect(page).to_have_url(f"{dashboard}login")
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(dashboard)


async def total(page: Page, name: str) -> int:
    return int(await page.locator(f'[data-total="{name}"]').inner_text())


async def keep(page: Page, tmp_path: Path, name: str) -> None:
    """A screenshot of the whole page, kept in EDOC_SCREENSHOTS too when it is set."""
    shot = tmp_path / name
    await page.screenshot(path=shot, full_page=True)
    assert shot.read_bytes().startswith(b"\x89PNG")
    if folder := os.environ.get("EDOC_SCREENSHOTS"):
        Path(folder).mkdir(exist_ok=True)
        shutil.copy(shot, Path(folder) / name)


async def test_without_the_credential_nothing_shows(net: LocalNetwork, browser: Browser) -> None:
    hub = f"{net.spec['hub']['url']}/dashboard/"
    context = await browser.new_context(ignore_https_errors=True)
    page = await context.new_page()
    await page.goto(hub)
    await expect(page).to_have_url(f"{hub}login")  # the page is not shown
    answer = await page.request.get(f"{hub}api/overview")
    assert answer.status == 401 and (await answer.json())["error"]["code"] == "EDOC-AUTH-003"
    agency = net.agency(TAY_NINH_AGENCY)
    await page.fill("#token", agency.token)  # an agency's token is no operator's
    await page.click("button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("EDOC-AUTH-003")
    node = f"{agency.base_url}/dashboard/api/overview"
    answer = await page.request.get(node, headers={"Authorization": f"Bearer {agency.token}"})
    assert answer.status == 401 and (await answer.json())["error"]["code"] == "EDOC-AUTH-003"
    await context.close()


async def test_the_hub_dashboard_follows_the_traffic(
    net: LocalNetwork, browser: Browser, tmp_path: Path
) -> None:
    hub = f"{net.spec['hub']['url']}/dashboard/"
    context = await browser.new_context(
        ignore_https_errors=True, viewport={"width": 1400, "height": 900}
    )
    page = await context.new_page()
    await log_in(page, hub, operator(net))
    before = await total(page, "sent")
    sender = net.agency(TAY_NINH_AGENCY)
    for _ in range(3):
        status, answer, _headers = await sender.send(metadata(sender.org_id, [KON_TUM_AGENCY]))
        assert status == 202, answer
    document_id = answer["document_id"]
    # no reload: the page asks for its data again by itself
    await expect(page.locator('[data-total="sent"]')).to_have_text(str(before + 3), timeout=WAIT_MS)
    await expect(page.locator('[data-total="received"]')).not_to_have_text("0", timeout=WAIT_MS)
    await expect(page.locator("#provinces")).to_contain_text("Ủy ban nhân dân tỉnh Tây Ninh")
    await expect(page.locator("#provinces")).to_contain_text("Ủy ban nhân dân tỉnh Kon Tum")
    await page.fill("#document-id", document_id)
    await page.click("#search button")
    trace = page.locator("#trace")  # the document there, the recipient's 01 back
    await expect(trace.locator("tr").first).to_contain_text(f"document{sender.org_id}")
    await expect(trace).to_contain_text(f"status 01{KON_TUM_AGENCY}{sender.org_id}H53")
    await page.fill("#org-id", KON_TUM_AGENCY)  # what it was sent today, each with its trace
    await page.fill("#day", dt.datetime.now(dt.UTC).date().isoformat())
    await page.click("#search-org button")
    await expect(page.locator("#search-result")).to_contain_text(" documents, ", timeout=WAIT_MS)
    await expect(trace).to_contain_text(document_id)
    async with page.expect_download() as downloading:  # the envelope the hub keeps
        await trace.locator("tr", has_text=document_id).first.locator("a").click()
    envelope = Path(await (await downloading.value).path()).read_bytes()
    assert document_id.split(",")[-1].encode() in envelope
    await expect(page.locator("#funnel")).to_contain_text("01 arrived")
    keys = KeyStore(net.data_dir / "keys")
    issued = keys.issue(
        "000.00.12.H53", org_name="Sở Thông tin và Truyền thông tỉnh Tây Ninh", days=12
    )
    alert = page.locator("#alerts .alert.warning")
    await expect(alert).to_contain_text(
        "Sở Thông tin và Truyền thông tỉnh Tây Ninh", timeout=WAIT_MS
    )
    await expect(page.locator("#certificates tr.warning").first).to_contain_text("000.00.12.H53")
    # redrawn by the page: the whole serial, as `keys list` says it
    serial = page.locator("#certificates tr.warning td.serial").first
    await expect(serial).to_have_text(issued.shown_serial)
    await keep(page, tmp_path, "dashboard-hub.png")
    await context.close()


async def test_the_node_dashboard_shows_its_agencies_and_retries(
    net: LocalNetwork, browser: Browser, tmp_path: Path
) -> None:
    sender = net.agency(TAY_NINH_AGENCY)
    node = f"{sender.base_url}/dashboard/"
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    await log_in(page, node, operator(net))
    await expect(page.locator("h1")).to_contain_text("Tây Ninh")
    status, answer, _headers = await sender.send(metadata(sender.org_id, [KON_TUM_AGENCY]))
    assert status == 202, answer
    recent = page.locator("#recent tr").first
    await expect(recent).to_contain_text(answer["document_id"], timeout=WAIT_MS)
    await expect(recent).to_contain_text(f"{KON_TUM_AGENCY}: 01", timeout=WAIT_MS)
    await expect(page.locator("#agencies")).to_contain_text("Sở Nội vụ tỉnh Tây Ninh")
    await expect(page.locator("#partners")).to_contain_text("H34 UBND tỉnh Kon Tum")
    await page.click("#retry-hub")
    await expect(page.locator("#retry-result")).to_contain_text("route hub", timeout=WAIT_MS)
    await keep(page, tmp_path, "dashboard-node.png")
    await context.close()

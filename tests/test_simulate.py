"""Traffic profiles and `edoc simulate` on real processes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from edoc.sim import profile, traffic
from tests.support.network import LocalNetwork, simulate

AGENCY_GROUPS = ("00", "07", "12", "15")


def _agencies(roots: tuple[str, ...]) -> dict[str, list[traffic.Agency]]:
    return {
        root: [
            traffic.Agency(
                f"000.00.{g}.{root}",
                root,
                "Tây Ninh",
                "http://x",
                "t",
                {"full_name": "Nguyễn Văn An", "position": "Giám đốc"},
            )
            for g in AGENCY_GROUPS
        ]
        for root in roots
    }


def test_a_year_of_tay_ninh_reproduces_the_article_exactly() -> None:
    tay_ninh = profile.load("tay-ninh-2021")
    planned = traffic.plan(tay_ninh, _agencies(tay_ninh.roots), seed=7)
    assert sum(1 for p in planned if p.sender.root == "H53") == 7711
    assert sum(1 for p in planned if p.recipient.root == "H53") == 13269
    assert all(p.metadata["promulgation"]["date"].startswith("2021-") for p in planned)
    assert all(p.sender.org_id != p.recipient.org_id for p in planned)
    assert len({p.document_id for p in planned}) == len(planned)  # unique DocumentIds


@pytest.mark.parametrize(
    "name, focus, sent, received",
    [
        ("kon-tum-2019", "H34", 137171, 0),
        ("phu-tho-2019h1", "H44", 85381, 5119),
        ("ca-mau-2018", "H12", 7557, 13004),
    ],
)
def test_every_profile_plans_its_figures(name: str, focus: str, sent: int, received: int) -> None:
    loaded = profile.load(name)
    planned = traffic.plan(loaded, _agencies(loaded.roots))
    assert sum(1 for p in planned if p.sender.root == focus) == sent
    from_elsewhere = sum(1 for p in planned if p.recipient.root == focus != p.sender.root)
    assert from_elsewhere == received


def test_same_seed_same_traffic_other_seed_other_traffic() -> None:
    tay_ninh = profile.load("tay-ninh-2021")
    agencies = _agencies(tay_ninh.roots)
    first = traffic.plan(tay_ninh, agencies, days=3, seed=1)
    assert first == traffic.plan(tay_ninh, agencies, days=3, seed=1)
    assert first != traffic.plan(tay_ninh, agencies, days=3, seed=2)
    mix = Counter(p.metadata["priority"] for p in first)
    assert mix[0] > mix[3]  # thường far more common than hỏa tốc


def test_national_volumes_scale_from_tay_ninh() -> None:
    national = profile.load("national")
    assert len(national.roots) == 85
    agencies = {root: group[:2] for root, group in _agencies(national.roots).items()}
    day = traffic.plan(national, agencies, days=1)
    assert 2500 < len(day) < 4500  # 836k a year over ~250 working days, with deadline peaks


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalNetwork]:
    local = LocalNetwork(tmp_path_factory.mktemp("sim"), ["H53", "H34", "H44", "H12"]).start()
    yield local
    local.stop()


async def test_simulated_days_are_conserved_and_counted_on_both_sides(
    net: LocalNetwork,
) -> None:
    assert net.net is not None
    report = simulate("tay-ninh-2021", "--days", "2", "--seed", "3", "--network", str(net.net.path))
    assert report["refused"] == {} and report["answers_refused"] == {}
    assert report["sent"] == report["arrived"] == report["documents"] > 100
    for row in report["rows"]:  # conservation, and the nodes' own counts agree
        assert row["sent"] == row["expected_sent"] == row["node_sent"] == row["delivered"]
        assert row["received"] == row["expected_received"] == row["node_received"]
    stats = {}
    for node in net.spec["nodes"]:
        agency = net.agency(node["agencies"][0]["org_id"])
        stats[node["province"]] = (await agency.request("GET", "/api/v1/stats"))[1]
    for a, a_stats in stats.items():  # every pair: A's sends to B are B's receipts from A
        for b, b_stats in stats.items():
            if a != b:
                sent = a_stats["by_partner_province"].get(f"000.00.00.{b}", {}).get("sent", 0)
                got = b_stats["by_partner_province"].get(f"000.00.00.{a}", {}).get("received", 0)
                assert sent == got, (a, b)


async def test_statuses_arrive_in_the_order_given(net: LocalNetwork) -> None:
    assert net.net is not None
    report = simulate(
        "tay-ninh-2021", "--days", "1", "--seed", "11", "--network", str(net.net.path)
    )
    assert report["refused"] == {} and report["sent"] == report["arrived"]
    sender = net.agency("000.00.00.H53")
    status, _, _ = await sender.request("GET", "/api/v1/stats")
    assert status == 200
    checked = 0
    for outgoing_id in range(1, 200):
        status, document, _ = await sender.request("GET", f"/api/v1/documents/{outgoing_id}")
        if status != 200:
            continue
        for recipient in document["recipients"]:
            codes = [h["state"] for h in recipient["history"] if h["state"].isdigit()]
            assert codes == sorted(codes), codes  # 01 before 03 before 04 …
            checked += 1
    assert checked > 0

"""Recognition as production runs it: two processes (`chorus serve recognition`), each with its own
connection pool, in one consumer group on one database. A burst of events split between them
and a burst of redemptions sent to both end exact: no lost update, no double count."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from devtools import local_stack
from devtools.cli import serve_argv
from services.recognition.handlers import GROUP
from shared.events import TOPICS
from shared.events.clicks import ClickRecorded
from shared.events.conversions import LeadCaptured
from shared.events.shares import ShareMade
from shared.messaging import EventProducer, skip_history
from shared.settings import ChorusSettings
from tests.helpers import bearer, eventually, group_assignments, new_org
from tests.integration.recognition.conftest import Publisher, body, enrol_now, kudos_once_enrolled, publisher
from tests.ports import free_ports

pytestmark = pytest.mark.integration

# Free ports, found at import: another checkout's test run may be running beside this one.
PORTS = tuple(free_ports(2))


@dataclass(frozen=True)
class Replicas:
    urls: list[str]
    group: str
    logs: list[Path]


def _port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def start_replica(port: int, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            serve_argv("recognition", port=port), env=env, stdout=log, stderr=subprocess.STDOUT
        )


@pytest.fixture(scope="module")
async def replicas(
    stack: local_stack.StackConfig, settings: ChorusSettings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Replicas]:
    """Two recognition processes sharing a database and a consumer group, each holding partitions."""
    for port in PORTS:
        if _port_in_use(port):
            raise AssertionError(f"port {port} is already in use: is another run of this test going on?")
    prefix = f"{settings.consumer_group_prefix}r{uuid.uuid4().hex[:6]}"
    group = f"{prefix}.{GROUP}"
    # Skip what other runs left on the topics, before the group's first member starts reading.
    await skip_history(settings.kafka_bootstrap, group, [t.name for t in TOPICS])
    env = {
        **os.environ,
        **stack.env(),
        "CHORUS_MONGO_DB_PREFIX": prefix,
        # The session's vault: what the test's own producers seal, these processes reveal.
        "CHORUS_VAULT_DATABASE": settings.vault_database_name(),
        "CHORUS_CONSUMER_GROUP_PREFIX": prefix,
        "CHORUS_RELAY_EVERY_S": "0.5",
        "CHORUS_RELAY_GRACE_S": "1.0",
        "CHORUS_LEADERBOARD_MAX_AGE_S": "0.2",
        "CHORUS_CONSUMER_RETRY_BACKOFF_S": "0.05",
    }
    log_dir = tmp_path_factory.mktemp("recognition-replicas")
    logs = [log_dir / f"recognition-{port}.log" for port in PORTS]
    urls = [f"http://127.0.0.1:{port}" for port in PORTS]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port, log_path in zip(PORTS, logs, strict=True):
            processes.append(start_replica(port, env, log_path))

        async def ready() -> bool:
            for process, log_path in zip(processes, logs, strict=True):
                if process.poll() is not None:
                    raise AssertionError(f"a replica exited; its log:\n{log_path.read_text()[-3000:]}")
            async with httpx.AsyncClient() as http:
                for url in urls:
                    try:
                        if (await http.get(f"{url}/readyz")).status_code != 200:
                            return False
                    except httpx.HTTPError:
                        return False
            return True

        await eventually(ready, timeout_s=90, interval_s=0.3)

        async def split() -> list[set[TopicPartition]] | None:
            held = await group_assignments(settings.kafka_bootstrap, group)
            return held if len(held) == 2 and all(held) else None

        # Both in the group, each holding partitions of every topic, before anything is published.
        first, second = await eventually(split, timeout_s=60, interval_s=0.5)
        assert not first & second
        assert {tp.topic for tp in first} == {tp.topic for tp in second}
        yield Replicas(urls, group, logs)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def as_(settings: ChorusSettings, org: str, sub: str, *roles: str) -> dict[str, str]:
    return bearer(settings, org=org, sub=sub, roles=list(roles) or ["advocate"])


# The burst: each advocate shares SHARES_EACH times, each share gets CLICKS_EACH unique clicks (the
# first also verifies it), and advocate i captures i + 1 leads. Shares (10), verified shares (5)
# and unique clicks (1) are capped at DAILY_CAP a day: 90 wanted, 80 granted. Leads give 50.
ADVOCATES = {"a0": "red", "a1": "red", "a2": "blue", "a3": "blue"}
SHARES_EACH = 5
CLICKS_EACH = 3
DAILY_CAP = 80
EXPECTED_POINTS = {advocate: DAILY_CAP + 50 * (i + 1) for i, advocate in enumerate(ADVOCATES)}
EXPECTED_ENTRIES = {
    advocate: 2 * SHARES_EACH + SHARES_EACH * CLICKS_EACH + i + 1 for i, advocate in enumerate(ADVOCATES)
}


async def publish_burst(pub: Publisher, at: datetime) -> None:
    """Every event of the burst, all at one moment (so one day's cap), shares and clicks interleaved."""
    for i, (advocate, team) in enumerate(ADVOCATES.items()):
        for s in range(SHARES_EACH):
            share_id = f"{advocate}-s{s}"
            await pub.send(
                ShareMade(
                    share_id=share_id,
                    advocate_id=advocate,
                    content_id="c1",
                    network="linkedin",
                    code=share_id,
                    short_url=f"https://ch.rs/{share_id}",
                    target_url="https://example.com/a",
                    team=team,
                    shared_at=at,
                )
            )
            for c in range(CLICKS_EACH):
                await pub.send(
                    ClickRecorded.model_validate(
                        {
                            "click_id": f"{share_id}-k{c}",
                            "share_id": share_id,
                            "advocate_id": advocate,
                            "content_id": "c1",
                            "network": "linkedin",
                            "clicked_at": at,
                            "unique": True,
                            "team": team,
                        }
                    )
                )
        for lead in range(i + 1):
            await pub.send(
                LeadCaptured(
                    conversion_id=f"{advocate}-lead{lead}",
                    key=f"{advocate}-s0",
                    customer_id=f"cust-{advocate}-{lead}",
                    attributed=True,
                    share_id=f"{advocate}-s0",
                    advocate_id=advocate,
                    content_id="c1",
                    converted_at=at,
                )
            )


async def standing_of(http: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[int, int, int]:
    """(entries, their sum, balance) of the advocate the headers are for."""
    ledger = body(await http.get(f"{url}/v1/me/ledger", headers=headers, params={"limit": 200}))["items"]
    points = body(await http.get(f"{url}/v1/me/points", headers=headers))
    return len(ledger), sum(int(e["points"]) for e in ledger), int(points["balance"])


def metric_samples(text: str, name: str, group: str) -> list[Any]:
    return [
        sample
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and sample.labels.get("messaging_consumer_group_name") == group
    ]


async def test_a_burst_of_events_split_between_two_processes_ends_exact(
    replicas: Replicas, producer: EventProducer, settings: ChorusSettings
) -> None:
    org = new_org()
    one, two = replicas.urls
    admin = as_(settings, org, "boss", "admin")
    async with httpx.AsyncClient(timeout=30) as http:
        rules = body(await http.get(f"{one}/v1/rules", headers=admin))["rules"]
        # No per-share cap: a share's events arrive on two topics, so which of them a per-share
        # cap cuts depends on their order; the daily cap's total does not.
        new_rules = {**rules, "daily_cap": DAILY_CAP, "per_share_cap": None}
        body(await http.put(f"{one}/v1/rules", headers=admin, json={"rules": new_rules}))

        pub = publisher(producer, org)
        # Profiles first, as enrolment comes before sharing: leads carry no team, and take the
        # profile's (else the share's, which may not have arrived yet on its own topic).
        for advocate, team in ADVOCATES.items():
            await pub.enrol(advocate, team, audience=10)
            goal = {"kind": "audience", "target": 10}
            body(await http.post(f"{one}/v1/me/goals", headers=as_(settings, org, advocate), json=goal))

        async def profiles_known() -> bool:
            for advocate in ADVOCATES:
                goals = body(await http.get(f"{two}/v1/me/goals", headers=as_(settings, org, advocate)))
                if not goals["items"][0]["achieved"]:
                    return False
            return True

        await eventually(profiles_known, timeout_s=60)
        await publish_burst(pub, datetime.now(UTC))
        await pub.resend_all()  # every event a second time: duplicates must change nothing

        expected = {
            advocate: (EXPECTED_ENTRIES[advocate], EXPECTED_POINTS[advocate], EXPECTED_POINTS[advocate])
            for advocate in ADVOCATES
        }

        async def standings(url: str) -> dict[str, tuple[int, int, int]]:
            return {a: await standing_of(http, url, as_(settings, org, a)) for a in ADVOCATES}

        async def all_scored() -> bool:
            return await standings(one) == expected

        await eventually(all_scored, timeout_s=200, interval_s=1.0)

        viewer = as_(settings, org, "a0")

        async def boards() -> tuple[list[tuple[str, int]], list[tuple[str, int, int]]]:
            people = body(await http.get(f"{two}/v1/leaderboard", headers=viewer, params={"period": "all"}))
            teams = body(
                await http.get(
                    f"{two}/v1/leaderboard", headers=viewer, params={"period": "all", "scope": "team"}
                )
            )
            return (
                [(r["advocate_id"], r["points"]) for r in people["items"]],
                sorted((r["team"], r["points"], r["active_advocates"]) for r in teams["items"]),
            )

        expected_boards = (
            sorted(EXPECTED_POINTS.items(), key=lambda item: -item[1]),
            [
                ("blue", EXPECTED_POINTS["a2"] + EXPECTED_POINTS["a3"], 2),
                ("red", EXPECTED_POINTS["a0"] + EXPECTED_POINTS["a1"], 2),
            ],
        )

        async def boards_exact() -> bool:
            return await boards() == expected_boards

        with contextlib.suppress(AssertionError):  # the assertion below says what differs
            await eventually(boards_exact, timeout_s=30)
        assert await boards() == expected_boards

        # Past a few relay rounds (both replicas finish what looks unfinished) nothing moved.
        await asyncio.sleep(3)
        assert await standings(two) == expected
        assert await boards() == expected_boards

        metrics = [(await http.get(f"{url}/metrics")).text for url in replicas.urls]

    # Each replica handled part of the burst, from partitions of its own.
    for text in metrics:
        handled = {
            (s.labels["messaging_destination_name"], s.labels["outcome"]): s.value
            for s in metric_samples(text, "chorus_consumer_events_total", replicas.group)
        }
        assert handled.get(("chorus.clicks", "ok"), 0) > 0, handled
        assert handled.get(("chorus.shares", "ok"), 0) > 0, handled
        assert not [key for key in handled if key[1] == "dead_lettered"], handled
    partitions = [
        {
            (s.labels["messaging_destination_name"], s.labels["messaging_destination_partition_id"])
            for s in metric_samples(text, "messaging_kafka_consumer_lag", replicas.group)
        }
        for text in metrics
    ]
    assert all(partitions), partitions


async def give_points(
    http: httpx.AsyncClient, url: str, settings: ChorusSettings, org: str, to: str, kudos: int
) -> None:
    """Kudos worth 50 points each: points without going through the broker."""
    admin = as_(settings, org, "boss", "admin")
    rules = body(await http.get(f"{url}/v1/rules", headers=admin))
    if rules["version"] == 0:
        points = {**rules["rules"]["points"], "kudos_received": 50}
        new_rules = {**rules["rules"], "kudos_weekly_allowance": 50, "points": points}
        body(await http.put(f"{url}/v1/rules", headers=admin, json={"rules": new_rules}))
    await enrol_now(settings, org, to)
    await kudos_once_enrolled(http, url, as_(settings, org, f"peer-of-{to}"), to, "#0")
    for i in range(1, kudos):
        body(
            await http.post(
                f"{url}/v1/kudos",
                headers=as_(settings, org, f"peer-of-{to}"),
                json={"to": to, "message": f"#{i}"},
            )
        )


async def test_concurrent_redemptions_on_two_processes_spend_exactly_what_the_balance_affords(
    replicas: Replicas, settings: ChorusSettings
) -> None:
    org = new_org()
    one, two = replicas.urls
    admin, me = as_(settings, org, "boss", "admin"), as_(settings, org, "a")
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=200)) as http:
        await give_points(http, one, settings, org, "a", 4)  # 200 points
        reward = body(await http.post(f"{one}/v1/rewards", headers=admin, json={"name": "Mug", "cost": 20}))
        mugs = f"/v1/rewards/{reward['reward_id']}/redemptions"
        balances: list[int] = []
        redeeming = True

        async def watch() -> None:
            while redeeming:
                balances.append(int(body(await http.get(f"{two}/v1/me/points", headers=me))["balance"]))

        watcher = asyncio.create_task(watch())
        # 50 at once, half to each process: the balance affords 10.
        answers = await asyncio.gather(
            *(http.post(f"{replicas.urls[i % 2]}{mugs}", headers=me) for i in range(50))
        )
        redeeming = False
        await watcher

        assert sorted(a.status_code for a in answers) == [201] * 10 + [409] * 40
        assert {a.json()["type"].rsplit("/", 1)[-1] for a in answers if a.status_code == 409} == {
            "insufficient-points"
        }
        assert balances and min(balances) >= 0
        ledger = body(await http.get(f"{two}/v1/me/ledger", headers=me, params={"limit": 200}))["items"]
        assert (
            sorted((e["kind"], e["points"]) for e in ledger)
            == [("kudos_received", 50)] * 4 + [("redemption", -20)] * 10
        )
        assert (
            body(await http.get(f"{one}/v1/me/points", headers=me))["balance"]
            == 0
            == sum(e["points"] for e in ledger)
        )
        mine = body(await http.get(f"{two}/v1/me/redemptions", headers=me, params={"limit": 100}))["items"]
        assert len(mine) == 10

        # A reward with 3 in stock, 20 asking at once: 3 get one.
        other = as_(settings, org, "b")
        await give_points(http, one, settings, org, "b", 1)
        few = body(
            await http.post(
                f"{one}/v1/rewards", headers=admin, json={"name": "Hoodie", "cost": 1, "stock": 3}
            )
        )
        path = f"/v1/rewards/{few['reward_id']}/redemptions"
        answers = await asyncio.gather(
            *(http.post(f"{replicas.urls[i % 2]}{path}", headers=other) for i in range(20))
        )
        assert sorted(a.status_code for a in answers) == [201] * 3 + [409] * 17
        hoodie = body(await http.get(f"{two}/v1/rewards/{few['reward_id']}", headers=other))
        assert hoodie["stock"] == 0
        assert body(await http.get(f"{two}/v1/me/points", headers=other))["balance"] == 47


async def test_rules_published_through_one_process_are_built_on_at_once_through_the_other(
    replicas: Replicas, settings: ChorusSettings
) -> None:
    """An admin saves the rules twice in a row and a load balancer sends the saves to different
    processes. The second process took the version to publish from the rules it keeps for scoring
    (up to two seconds old) and refused a save made from the version just published, as if
    someone else had published at the same moment."""
    org = new_org()
    one, two = replicas.urls
    admin = as_(settings, org, "boss", "admin")
    async with httpx.AsyncClient(timeout=30) as http:

        async def publish(url: str, daily_cap: int, expected_version: int | None = None) -> int:
            new_rules = {"rules": {**rules, "daily_cap": daily_cap}, "expected_version": expected_version}
            return int(body(await http.put(f"{url}/v1/rules", headers=admin, json=new_rules))["version"])

        rules = body(await http.get(f"{two}/v1/rules", headers=admin))["rules"]  # `two` keeps version 0
        assert await publish(one, 100, expected_version=0) == 1
        assert await publish(two, 90, expected_version=1) == 2
        body(await http.get(f"{one}/v1/rules", headers=admin))  # `one` keeps version 2
        assert await publish(two, 80) == 3
        assert await publish(one, 70) == 4
        versions = body(await http.get(f"{two}/v1/rules/versions", headers=admin))["items"]
        caps = [(v["version"], v["rules"]["daily_cap"]) for v in versions]
        assert caps == [(4, 70), (3, 80), (2, 90), (1, 100)]

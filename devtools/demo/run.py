"""`chorus demo`: a simulated advocacy program, run against a stack through its public APIs.

It sets up an organisation's program (settings, policy, course, advocates, content, rules,
rewards, goals, a survey), then plays the plan's days (devtools/demo/plan.py): shares, visits
through the real redirect, leads and sales through the conversions API with an API key, kudos
and survey answers. It ends with redemptions and a summary read back from the APIs.

What is simulated in real time, and why: the APIs take no past time for shares (a share goes out
now or later) nor for clicks (the redirect stamps them), and a conversion may not be dated
before its click, so the whole program happens now, its days following each other in seconds
(or at `--speed` days a minute). The goals start on the simulated program's first day (D - 1
days ago), so their forecasts read the run as D days of activity; rules that count real days or
weeks (the daily points cap, the weekly kudos allowance) are scaled to the D days.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from devtools.demo import plan as planning
from devtools.demo.client import Api, DemoError, no_cookies
from devtools.demo.plan import CURRENCY, DISCLOSURE, Plan, Visit
from devtools.demo.report import DemoSummary, read_summary
from devtools.gateway import GATEWAY_PORT
from services.metrics.goals.domain import add_months
from shared.events.clicks import CLICK_ID_PARAM
from shared.settings import ChorusSettings

ADMIN = "demo-admin"
# Recognition's counter of each conversion it scores for the advocate credited with it.
SCORED_CONVERSIONS = {"lead": "leads", "sale": "sales", "application": "applications", "hire": "hires"}
# The funnel's counters of the conversions the demo reports, by conversion type.
CONVERSION_COUNTERS = {
    "lead": "leads",
    "sale": "sales",
    "refund": "refunds",
    "application": "applications",
    "hire": "hires",
}
EDITOR = "demo-editor"
SETTLE_TIMEOUT_S = 90.0
# How often a wait asks again: the funnel often (the wait is the lag the demo reports), the checks
# that take a request per advocate less often.
LAG_POLL_S = 0.05
POLL_S = 0.5
# Rewards: (name, cost in points, stock, price to the organisation in cents).
REWARDS = (
    ("Donate 10 EUR to a charity of your choice", 100, None, 1000),
    ("Company hoodie", 300, 40, 3500),
    ("Lunch with the CEO", 600, 4, 6000),
    ("Conference ticket", 2000, 2, 90000),
)


@dataclass(frozen=True)
class DemoOptions:
    advocates: int = 50
    days: int = 28
    seed: int = 7
    speed: float = 0.0  # simulated days a real minute; 0: as fast as the stack takes it
    base_url: str = f"http://127.0.0.1:{GATEWAY_PORT}"  # the local gateway
    org: str | None = None  # default: a new organisation for every run


@dataclass
class Sent:
    """What the demo did, as the services answered it; the numbers the stack should come to."""

    shares: dict[int, dict[str, Any]] = field(default_factory=dict)  # plan's share -> the answer
    click_ids: dict[int, str] = field(default_factory=dict)  # plan's visit -> click id
    visits: Counter[str] = field(default_factory=Counter)  # by Visit kind
    conversions: Counter[str] = field(default_factory=Counter)  # counted (not duplicates), by type
    credited: Counter[tuple[str, str]] = field(default_factory=Counter)  # see count_credit
    kudos: Counter[str] = field(default_factory=Counter)  # received, by advocate
    lag_s: list[float] = field(default_factory=list)

    @property
    def redirects(self) -> int:
        return sum(self.visits.values())


@dataclass
class Program:
    """Ids the services gave the program's parts."""

    org: str
    first_day: date  # the simulated program's first day: the goals start there
    first_real_day: date  # the day the run began: its activity is counted from there
    policy_version: int = 0
    course_id: str = ""
    module_ids: list[str] = field(default_factory=list)
    content_ids: dict[str, str] = field(default_factory=dict)
    reward_ids: list[tuple[str, int]] = field(default_factory=list)
    survey_id: str = ""
    goal_ids: list[str] = field(default_factory=list)


async def gather(calls: Iterable[Awaitable[Any]]) -> list[Any]:
    return list(await asyncio.gather(*calls))


def today() -> date:
    return datetime.now(UTC).date()


def new_org(seed: int) -> str:
    return f"demo-{seed}-{datetime.now(UTC):%Y%m%d-%H%M%S}"


# --- setting the program up -----------------------------------------------------------------------


async def set_up(api: Api, plan: Plan, program: Program) -> None:
    admin, editor = api.as_user(ADMIN, "admin"), api.as_user(EDITOR, "editor")
    policy = await api.call(
        "POST",
        "/v1/policy/versions",
        admin,
        key="policy",
        json={
            "title": "Social media policy",
            "body": "Share in your own words, keep the #employee disclosure, never promise results, "
            "and never share customer data.",
        },
    )
    program.policy_version = policy["version"]
    course = await api.call(
        "POST",
        "/v1/courses",
        editor,
        key="course",
        json={
            "title": "Social Media University: sharing well",
            "description": "Fifteen minutes before your first share.",
            "modules": [
                {
                    "id": "why",
                    "title": "Why your voice matters",
                    "body": "Posts from people reach further than posts from brands.",
                    "minutes": 4,
                },
                {
                    "id": "how",
                    "title": "Writing a post in your own words",
                    "body": "Start from a suggested caption; make it yours.",
                    "minutes": 6,
                },
                {
                    "id": "rules",
                    "title": "Disclosure and what not to share",
                    "body": "Keep #employee in every post; never share customer data.",
                    "minutes": 5,
                },
            ],
        },
    )
    program.course_id, program.module_ids = course["id"], [m["id"] for m in course["modules"]]
    await api.call(
        "PUT",
        "/v1/settings",
        admin,
        json={
            "required_disclosure": DISCLOSURE,
            "blocked_words": list(planning.BLOCKED_WORDS),
            "require_policy_acknowledgement": True,
            "required_course_ids": [program.course_id],
            "unique_click_window_hours": 24,
            "attribution_window_days": 30,
        },
    )
    await api.call(
        "PUT", "/v1/metrics/settings", admin, json={"cpc": "1.50", "cpm": "12.00", "currency": CURRENCY}
    )
    key = await api.call(
        "POST",
        "/v1/api-keys",
        admin,
        json={"name": "CRM (demo)", "scopes": ["conversions:write", "surveys:respond"]},
    )
    api.api_key = key["api_key"]
    now = datetime.now(UTC)
    await api.call(
        "PUT",
        "/v1/rules",
        admin,
        json={
            "rules": {
                # The caps count real UTC days and weeks, and the demo's days pass in minutes.
                "daily_cap": 200 * plan.days,
                "kudos_weekly_allowance": planning.kudos_allowance(plan.days),
                "campaigns": [
                    {
                        "id": "hiring-push",
                        "name": "Hiring push: double points on job posts",
                        "starts_at": (now - timedelta(hours=1)).isoformat(),
                        "ends_at": (now + timedelta(days=plan.days)).isoformat(),
                        "multiplier": 2.0,
                        "tags": ["hiring"],
                        "contest": True,
                    }
                ],
            }
        },
    )
    for name, cost, stock, price in REWARDS:
        reward = await api.call(
            "POST",
            "/v1/rewards",
            admin,
            key=f"reward-{cost}",
            json={"name": name, "cost": cost, "stock": stock, "price_cents": price, "currency": CURRENCY},
        )
        program.reward_ids.append((reward["reward_id"], cost))
    await gather(enrol(api, advocate) for advocate in plan.advocates)
    await publish_content(api, plan, program)


async def enrol(api: Api, advocate: planning.AdvocatePlan) -> None:
    """The admin enrols the advocate; one who keeps off public leaderboards withdraws that consent
    themself, as only they may."""
    profile = {
        "display_name": advocate.name,
        "team": advocate.team,
        "department": advocate.department,
        "location": advocate.location,
        "language": advocate.language,
        "networks": [
            {"network": n, "handle": f"@{advocate.id}", "audience_size": size}
            for n, size in advocate.networks
        ],
    }
    await api.call("PUT", f"/v1/advocates/{advocate.id}", api.as_user(ADMIN, "admin"), json=profile)
    if not advocate.public_ranking:
        withdrawn = {**profile, "consents": {"tracking": True, "public_ranking": False}}
        await api.call("PUT", "/v1/advocates/me", api.as_user(advocate.id, "advocate"), json=withdrawn)


async def publish_content(api: Api, plan: Plan, program: Program) -> None:
    editor = api.as_user(EDITOR, "editor")

    async def one(item: planning.ContentPlan) -> None:
        author = (
            editor
            if item.submitted_by is None
            else api.as_user(plan.advocates[item.submitted_by].id, "advocate")
        )
        created = await api.call(
            "POST",
            "/v1/content",
            author,
            key=f"content-{item.key}",
            json={
                "type": item.type,
                "title": item.title,
                "url": item.url,
                "tags": list(item.tags),
                "language": item.language,
                "audience": {"teams": list(item.audience_teams)},
                "suggested_posts": [
                    {"network": n, "language": lang, "text": t} for n, lang, t in item.captions
                ],
            },
        )
        program.content_ids[item.key] = created["id"]
        # An advocate's own post waits for an editor's review; the brand's are published at once.
        await api.call("POST", f"/v1/content/{created['id']}/publish", editor)

    await gather(one(item) for item in plan.content)


async def train(api: Api, plan: Plan, program: Program) -> None:
    """The trained advocates acknowledge the policy and take the course; some set personal goals."""

    async def one(advocate: planning.AdvocatePlan) -> None:
        me = api.as_user(advocate.id, "advocate")
        if advocate.personal_goal is not None:
            kind, target = advocate.personal_goal
            await api.call(
                "POST", "/v1/me/goals", me, key=f"goal-{advocate.id}", json={"kind": kind, "target": target}
            )
        if not advocate.trains:
            return
        await api.call("POST", "/v1/policy/acknowledgements", me, json={"version": program.policy_version})
        for module in program.module_ids:
            await api.call("POST", f"/v1/courses/{program.course_id}/modules/{module}/complete", me)

    await gather(one(a) for a in plan.advocates)


async def create_survey_and_goals(api: Api, plan: Plan, program: Program) -> None:
    editor = api.as_user(EDITOR, "editor")
    survey = await api.call(
        "POST",
        "/v1/surveys",
        editor,
        json={
            "kind": "enps",
            "title": "Advocacy pulse",
            "questions": [
                {"id": "recommend", "type": "nps", "text": "How likely are you to recommend working here?"},
                {"id": "support", "type": "rating", "text": "How well supported do you feel in sharing?"},
                {"id": "comment", "type": "text", "text": "Anything we should change?"},
            ],
        },
    )
    program.survey_id = survey["survey_id"]
    n = len(plan.advocates)
    goals: list[tuple[str, str, float, int, dict[str, str]]] = [
        ("Shares: 1.5 a week each", "shares", 6.0 * n, 1, {}),
        ("Training done", "training_completion", 0.9, 1, {}),
        ("Unique visitors", "unique_clicks", 40.0 * n, 3, {}),
        ("Leads", "leads", 2.0 * n, 3, {}),
        ("Sales", "sales", 1.0 * n, 6, {}),
        ("Hires through advocates", "hires", max(1.0, 0.1 * n), 6, {}),
        (
            "Employee NPS",
            "nps",
            30.0,
            6,
            {"survey_id": program.survey_id, "question_id": "recommend"},
        ),
    ]
    for name, metric, target, months, extra in goals:
        # The program began D - 1 days ago: the goals' clocks start there (see the module's doc).
        starts = program.first_day
        ends = add_months(starts, months) - timedelta(days=1)
        goal = await api.call(
            "POST",
            "/v1/goals",
            editor,
            key=f"goal-{metric}",
            json={
                "name": name,
                "metric": metric,
                "target": target,
                "starts_on": starts.isoformat(),
                "ends_on": ends.isoformat(),
                **extra,
            },
        )
        program.goal_ids.append(goal["goal_id"])


async def wait_until(
    missing: Callable[[], Awaitable[str | None]], what: str, interval_s: float = POLL_S
) -> float:
    """Poll until nothing is `missing` (it says what is, or None); the seconds it took. Raises
    DemoError naming `what` and what was still missing past the timeout."""
    started = time.monotonic()
    while (left := await missing()) is not None:
        if time.monotonic() - started > SETTLE_TIMEOUT_S:
            raise DemoError(f"waited {SETTLE_TIMEOUT_S:.0f} s for {what}; still {left}")
        await asyncio.sleep(interval_s)
    return time.monotonic() - started


async def until_shareable(api: Api, plan: Plan, program: Program) -> None:
    """Sharing learns of content and training from events: wait until every trained advocate may
    share what they are meant to."""

    async def ready(advocate: planning.AdvocatePlan) -> bool:
        wanted = {program.content_ids[c.key] for c in plan.visible(advocate)}
        page = await api.call(
            "GET", "/v1/shareable", api.as_user(advocate.id, "advocate"), params={"limit": 200}
        )
        return wanted <= {item["content_id"] for item in page["items"]}

    waiting = [a for a in plan.advocates if a.trains]

    async def all_ready() -> str | None:
        nonlocal waiting
        flags = await gather(ready(a) for a in waiting)
        waiting = [a for a, ok in zip(waiting, flags, strict=True) if not ok]
        return f"waiting for {', '.join(a.id for a in waiting)}" if waiting else None

    await wait_until(all_ready, "the trained advocates to be allowed to share")


# --- the days ---------------------------------------------------------------------------------------


def visit_headers(api: Api, plan: Plan, click: planning.ClickPlan) -> tuple[str, dict[str, str]]:
    headers = {"User-Agent": click.user_agent}
    if click.country:
        headers["CF-IPCountry"] = click.country
    if click.referrer:
        headers["Referer"] = click.referrer
    if click.kind is Visit.PREFETCH:
        headers["Sec-Purpose"] = "prefetch"
    if click.kind is Visit.SELF:
        share = plan.shares[click.share]
        headers.update(api.as_user(plan.advocates[share.advocate].id, "advocate"))
    return "GET", headers


async def play_day(
    api: Api, visitors: httpx.AsyncClient, plan: Plan, program: Program, sent: Sent, day: int
) -> None:
    today_plan = plan.on(day)

    async def share(index: int) -> None:
        s = plan.shares[index]
        made = await api.call(
            "POST",
            "/v1/shares",
            api.as_user(plan.advocates[s.advocate].id, "advocate"),
            key=f"share-{index}",
            json={"content_id": program.content_ids[s.content], "network": s.network, "message": s.message},
        )
        sent.shares[index] = made

    await gather(share(i) for i in today_plan.shares)

    # A share's visits in order (a repeat comes after the first visit); shares side by side.
    per_share: dict[int, list[int]] = {}
    for c in today_plan.clicks:
        per_share.setdefault(plan.clicks[c].share, []).append(c)

    async def visits(indexes: list[int]) -> None:
        for c in indexes:
            click = plan.clicks[c]
            method, headers = visit_headers(api, plan, click)
            location = await api.visit(visitors, sent.shares[click.share]["short_url"], headers, method)
            sent.visits[click.kind] += 1
            if click.kind in (Visit.PERSON, Visit.REPEAT):
                sent.click_ids[c] = parse_qs(urlsplit(location).query)[CLICK_ID_PARAM][0]

    await gather(visits(v) for v in per_share.values())

    async def convert(index: int) -> None:
        conversion = plan.conversions[index]
        body: dict[str, Any] = {"type": conversion.kind, "customer_id": conversion.customer}
        if conversion.click is not None:
            body["click_id"] = sent.click_ids[conversion.click]
        if conversion.kind in ("sale", "refund"):
            body.update(amount=conversion.amount, currency=CURRENCY, order_id=conversion.order)
        for attempt in range(2 if conversion.resent else 1):
            answer = await api.call(
                "POST",
                "/v1/conversions",
                api.as_integration(),
                key=f"conversion-{index}-{attempt}",
                json=body,
            )
            if answer["duplicate"]:  # the CRM's resend: counted once
                continue
            sent.conversions[conversion.kind] += 1
            count_credit(sent.credited, conversion.kind, answer)

    # One at a time per customer: a sale comes after its lead, a CRM's resend after the first.
    per_customer: dict[str, list[int]] = {}
    for i in today_plan.conversions:
        per_customer.setdefault(plan.conversions[i].customer, []).append(i)

    async def customer(indexes: list[int]) -> None:
        for i in indexes:
            await convert(i)

    await gather(customer(v) for v in per_customer.values())

    async def kudos(k: planning.KudosPlan, n: int) -> None:
        receiver = plan.advocates[k.receiver].id
        # Kudos go only to colleagues recognition knows: an enrolment still on its way over the
        # broker is refused (422) until it arrives.
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while True:
            try:
                await api.call(
                    "POST",
                    "/v1/kudos",
                    api.as_user(plan.advocates[k.giver].id, "advocate"),
                    key=f"kudos-{day}-{n}",
                    json={"to": receiver, "message": k.message},
                )
                break
            except DemoError as e:
                if e.status != 422 or "not an enrolled" not in str(e) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(POLL_S)
        sent.kudos[receiver] += 1

    async def answer(a: planning.SurveyAnswer) -> None:
        answers: dict[str, int | str] = {"recommend": a.nps, "support": a.support}
        if a.comment:
            answers["comment"] = a.comment
        await api.call(
            "POST",
            f"/v1/surveys/{program.survey_id}/responses",
            api.as_user(plan.advocates[a.advocate].id, "advocate"),
            json={"answers": answers},
            already=409,
        )

    await gather(
        [*(kudos(k, n) for n, k in enumerate(today_plan.kudos)), *(answer(a) for a in today_plan.answers)]
    )


async def funnel_totals(api: Api, program: Program) -> dict[str, Any]:
    report = await api.call(
        "GET",
        "/v1/funnel",
        api.as_user(ADMIN, "admin"),
        params={"from": program.first_real_day.isoformat(), "to": today().isoformat(), "group_by": "day"},
    )
    totals: dict[str, Any] = report["totals"]
    return totals


async def until_counted(api: Api, program: Program, sent: Sent) -> float:
    """Wait until the funnel counts everything sent so far; the seconds that took (the lag of the
    metrics projector behind the demo's last request, as a reader of the API sees it)."""

    async def counted() -> str | None:
        t = await funnel_totals(api, program)
        counted = {
            "shares": t["shares"],
            "visits": t["clicks"] + t["bot_clicks"] + t["self_clicks"],
            **{counter: t[counter] for counter in CONVERSION_COUNTERS.values()},
        }
        wanted = {
            "shares": len(sent.shares),
            "visits": sent.redirects,
            **{counter: sent.conversions[kind] for kind, counter in CONVERSION_COUNTERS.items()},
        }
        if counted == wanted:
            return None
        return f"counted {counted} of {wanted} in {program.org}"

    return await wait_until(counted, "the metrics service to count the day's activity", LAG_POLL_S)


def count_credit(credited: Counter[tuple[str, str]], kind: str, answer: dict[str, Any]) -> None:
    """Keep `credited` (advocate, conversion type) -> how many recognition counts, after the API
    answered a new conversion: a lead, sale, application or hire adds one to the advocate it is
    attributed to; a refund takes its sale back, for the plan refunds only in full and
    recognition reverses a sale refunded in full."""
    if not answer["attributed"]:
        return
    if kind in SCORED_CONVERSIONS:
        credited[(answer["advocate_id"], kind)] += 1
    elif kind == "refund":
        credited[(answer["advocate_id"], "sale")] -= 1


async def until_scored(api: Api, plan: Plan, program: Program, sent: Sent) -> float:
    """Wait until recognition has scored everything sent (every advocate's counters say so); the
    seconds that took after the last day (recognition's lag behind the demo)."""
    author = {c.submitted_by for c in plan.content if c.submitted_by is not None}
    shares = Counter(plan.advocates[plan.shares[i].advocate].id for i in sent.shares)
    expected = {
        a.id: {
            "shares": shares[a.id],
            **{counter: sent.credited[(a.id, kind)] for kind, counter in SCORED_CONVERSIONS.items()},
            "kudos_received": sent.kudos[a.id],
            "courses_completed": int(a.trains),
            "policies_acknowledged": int(a.trains),
            "content_published": int(i in author),
        }
        for i, a in enumerate(plan.advocates)
    }
    # Unique clicks as the funnel counts them per advocate (recognition scores the same ones).
    by_advocate = await api.call(
        "GET",
        "/v1/funnel",
        api.as_user(ADMIN, "admin"),
        params={
            "from": program.first_real_day.isoformat(),
            "to": today().isoformat(),
            "group_by": "advocate",
        },
    )
    clicks = {row["key"]: row["unique_clicks"] for row in by_advocate["rows"]}
    for advocate_id, counters in expected.items():
        counters["unique_clicks"] = clicks.get(advocate_id, 0)
    waiting = list(plan.advocates)

    async def scored() -> str | None:
        # Only those not yet scored in full are asked again: all the demo sent is in `expected`,
        # and polling every advocate would take the CPU recognition needs to catch up.
        nonlocal waiting
        points = await gather(
            api.call("GET", "/v1/me/points", api.as_user(a.id, "advocate")) for a in waiting
        )
        behind = {
            a.id: {
                k: p["counters"].get(k, 0) for k, v in expected[a.id].items() if p["counters"].get(k, 0) != v
            }
            for a, p in zip(waiting, points, strict=True)
        }
        waiting = [a for a in waiting if behind[a.id]]
        if not waiting:
            return None
        first = waiting[0].id
        return (
            f"{len(waiting)} advocates not scored in full, e.g. {first}: {behind[first]} of {expected[first]}"
        )

    return await wait_until(scored, "the recognition service to score the program", interval_s=1.0)


async def redeem(api: Api, plan: Plan, program: Program) -> None:
    """Advocates with points to spend redeem a reward (most of them: not everyone wants one); an
    admin approves them and fulfils the ones ready. Deterministic for the seed and the balances."""
    rng = random.Random(plan.seed * 7919)
    admin = api.as_user(ADMIN, "admin")
    balances = await gather(
        api.call("GET", "/v1/me/points", api.as_user(a.id, "advocate")) for a in plan.advocates
    )
    for advocate, points in zip(plan.advocates, balances, strict=True):
        affordable = [(rid, cost) for rid, cost in program.reward_ids if cost <= points["balance"]]
        if not affordable or rng.random() < 0.3:
            continue
        reward_id, _ = max(affordable, key=lambda r: r[1]) if rng.random() < 0.5 else rng.choice(affordable)
        try:
            redemption = await api.call(
                "POST",
                f"/v1/rewards/{reward_id}/redemptions",
                api.as_user(advocate.id, "advocate"),
                key=f"redeem-{advocate.id}",
            )
        except DemoError as refused:
            if refused.status == 409:  # out of stock or budget: the catalogue says no
                continue
            raise
        if rng.random() < 0.8:
            await api.call("POST", f"/v1/redemptions/{redemption['redemption_id']}/approve", admin, json={})
            if rng.random() < 0.6:
                await api.call(
                    "POST", f"/v1/redemptions/{redemption['redemption_id']}/fulfil", admin, json={}
                )


# --- the run -------------------------------------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(console: Console | None) -> Iterator[Progress | None]:
    if console is None:
        yield None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
    ) as progress:
        yield progress


async def run_demo(
    options: DemoOptions,
    settings: ChorusSettings | None = None,
    *,
    console: Console | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> DemoSummary:
    """Run the demo against `options.base_url`; the summary as the APIs report it at the end.
    `console` shows the progress (None: quiet)."""
    started = time.monotonic()
    settings = settings or ChorusSettings()
    plan = planning.make_plan(options.seed, options.advocates, options.days)
    org = options.org or new_org(options.seed)
    program = Program(org, today() - timedelta(days=options.days - 1), today())
    sent = Sent()
    async with (
        httpx.AsyncClient(timeout=30, transport=transport, cookies=no_cookies()) as http,
        httpx.AsyncClient(timeout=30, transport=transport, cookies=no_cookies()) as visitors,
    ):
        api = Api(http, options.base_url.rstrip("/"), org, settings)
        if console is not None:
            console.print(
                f"chorus demo: organisation [cyan]{org}[/cyan] at {api.base_url}, seed {options.seed}"
            )
        with progress_bar(console) as progress:
            steps = progress.add_task("setting up", total=4, status=org) if progress else None

            def step(status: str) -> None:
                if progress is not None and steps is not None:
                    progress.update(steps, advance=1, status=status)

            await set_up(api, plan, program)
            step(f"{len(plan.advocates)} advocates, {len(plan.content)} content items")
            await train(api, plan, program)
            step("policy and course done")
            await create_survey_and_goals(api, plan, program)
            step("survey and goals set")
            await until_shareable(api, plan, program)
            set_up_s = time.monotonic() - started
            step("sharing is open")
            days = progress.add_task("simulating days", total=options.days, status="") if progress else None
            for day in range(options.days):
                await play_day(api, visitors, plan, program, sent, day)
                sent.lag_s.append(await until_counted(api, program, sent))
                if options.speed > 0:
                    await asyncio.sleep(
                        max(0.0, started + set_up_s + (day + 1) * 60 / options.speed - time.monotonic())
                    )
                if progress is not None and days is not None:
                    progress.update(
                        days,
                        advance=1,
                        status=f"{len(sent.shares)} shares, {sent.redirects} visits, "
                        f"{sent.conversions['lead']} leads, {sent.conversions['sale']} sales, "
                        f"{sent.conversions['application']} applications",
                    )
            wrap = progress.add_task("settling", total=2, status="") if progress else None
            days_s = time.monotonic() - started - set_up_s
            scoring_lag_s = await until_scored(api, plan, program, sent)
            if progress is not None and wrap is not None:
                progress.update(wrap, advance=1, status="scored; redemptions")
            await redeem(api, plan, program)
            summary = await read_summary(api, program, plan, ADMIN)
            if progress is not None and wrap is not None:
                progress.update(wrap, advance=1, status="done")
    summary.elapsed_s = round(time.monotonic() - started, 1)
    summary.scoring_lag_s = round(scoring_lag_s, 1)
    summary.phases_s = {
        "setting up": round(set_up_s, 1),
        "the days": round(days_s, 1),
        "settling and reading back": round(summary.elapsed_s - set_up_s - days_s, 1),
    }
    summary.requests = api.requests
    summary.lag_s = [round(s, 2) for s in sent.lag_s]
    summary.median_lag_s = round(statistics.median(sent.lag_s), 2) if sent.lag_s else 0.0
    return summary

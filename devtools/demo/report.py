"""What the demo prints: its summary, read back from the APIs at the end, and how it is shown.

Every figure in the summary's API sections is a value an API answered (the funnel, the program
report, the leaderboards, the goals, the survey results, the redemptions), never one the demo
counted itself: the end-to-end test asks the APIs again and compares. Only the run's own facts
(time taken, requests, the lag it measured) come from the demo.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from devtools.gateway import GATEWAY_PORT, local_service_ports

if TYPE_CHECKING:  # the run imports this module
    from devtools.demo.client import Api
    from devtools.demo.plan import Plan
    from devtools.demo.run import Program

TOP = 5
FUNNEL_FIGURES = (
    ("shares", "shares"),
    ("reach", "reach (audience of the shares)"),
    ("clicks", "clicks by people"),
    ("unique_clicks", "unique clicks"),
    ("bot_clicks", "bot, preview and prefetch clicks (apart)"),
    ("self_clicks", "advocates' own clicks (apart)"),
    ("leads", "leads"),
    ("sales", "sales"),
    ("refunds", "refunds"),
    ("applications", "job applications"),
    ("hires", "hires"),
    ("ctr", "click-through rate"),
    ("conversion_rate", "conversion rate"),
    ("application_rate", "application rate"),
    ("emv", "earned media value"),
)
PROGRAM_FIGURES = ("enrolled", "active", "trained", "active_ratio", "training_completion")
GOAL_FIGURES = ("target", "value", "progress", "forecast", "status")
BOARD_WAIT_S = 30.0


@dataclass
class DemoSummary:
    org: str
    base_url: str
    seed: int
    advocates: int
    days: int
    from_day: str  # the funnel's range: the days the run's activity fell on
    to_day: str
    funnel: dict[str, Any]  # the funnel's totals row
    program: dict[str, Any]
    leaderboard: list[dict[str, Any]]  # the all-time board's top rows (rank, advocate_id, points)
    teams: list[dict[str, Any]]  # the team board (team, points_per_advocate, ...)
    goals: list[dict[str, Any]]
    survey: dict[str, Any]  # survey_id, responses, nps, average
    redemptions: dict[str, int]  # by status
    names: dict[str, str] = field(default_factory=dict)  # advocate id -> display name (the demo's)
    elapsed_s: float = 0.0
    requests: int = 0
    lag_s: list[float] = field(default_factory=list)
    median_lag_s: float = 0.0
    phases_s: dict[str, float] = field(default_factory=dict)
    scoring_lag_s: float = 0.0  # from the last day until recognition had scored it all


def board_rows(board: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("rank", "advocate_id", "team", "points", "active_advocates", "points_per_advocate")
    return [{k: row.get(k) for k in keep} for row in board["items"][:TOP]]


def goal_rows(goals: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("goal_id", "name", "metric", "starts_on", "ends_on", *GOAL_FIGURES)
    return [{k: g[k] for k in keep} for g in goals["items"]]


def survey_figures(results: dict[str, Any]) -> dict[str, Any]:
    by_id = {q["id"]: q for q in results["questions"]}
    return {
        "survey_id": results["survey_id"],
        "responses": results["responses"],
        "nps": by_id["recommend"].get("nps"),
        "average": by_id["support"].get("average"),
    }


async def fresh_board(api: Api, viewer: str, since: datetime, **params: Any) -> dict[str, Any]:
    """A leaderboard built after `since`: boards are ranked in memory and rebuilt every few
    seconds (`as_of`), so one read just after the last points may still show the ones before."""
    deadline = time.monotonic() + BOARD_WAIT_S
    while True:
        board: dict[str, Any] = await api.call(
            "GET", "/v1/leaderboard", api.as_user(viewer, "admin"), params={"period": "all", **params}
        )
        as_of = board.get("as_of")
        if as_of is None or datetime.fromisoformat(as_of) >= since or time.monotonic() > deadline:
            return board
        await asyncio.sleep(0.5)


async def redemption_counts(api: Api, viewer: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = await api.call("GET", "/v1/redemptions", api.as_user(viewer, "admin"), params=params)
        for item in page["items"]:
            counts[item["status"]] = counts.get(item["status"], 0) + 1
        cursor = page.get("next_cursor")
        if not cursor:
            return dict(sorted(counts.items()))


async def read_summary(api: Api, program: Program, plan: Plan, viewer: str) -> DemoSummary:
    """The program's figures as the APIs report them now (the demo waited for them to settle)."""
    since = datetime.now(UTC)
    admin = api.as_user(viewer, "admin")
    to_day = datetime.now(UTC).date().isoformat()
    funnel, report, goals, survey, board, teams, redemptions = await asyncio.gather(
        api.call(
            "GET", "/v1/funnel", admin, params={"from": program.first_real_day.isoformat(), "to": to_day}
        ),
        api.call("GET", "/v1/program", admin),
        api.call("GET", "/v1/goals", admin, params={"limit": 50}),
        api.call("GET", f"/v1/surveys/{program.survey_id}/results", admin),
        fresh_board(api, viewer, since, limit=TOP),
        fresh_board(api, viewer, since, scope="team"),
        redemption_counts(api, viewer),
    )
    return DemoSummary(
        org=program.org,
        base_url=api.base_url,
        seed=plan.seed,
        advocates=len(plan.advocates),
        days=plan.days,
        from_day=program.first_real_day.isoformat(),
        to_day=to_day,
        funnel=funnel["totals"],
        program={k: report[k] for k in PROGRAM_FIGURES},
        leaderboard=board_rows(board),
        teams=board_rows(teams),
        goals=goal_rows(goals),
        survey=survey_figures(survey),
        redemptions=redemptions,
        names={a.id: a.name for a in plan.advocates},
    )


# --- printing ---------------------------------------------------------------------------------------


def figure(value: Any) -> str:
    """A figure as printed: integers as they are, fractions to four decimals, money as sent."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, dict):
        return ", ".join(f"{amount} {currency}" for currency, amount in value.items()) or "0"
    return str(value)


def service_urls(base_url: str) -> dict[str, str]:
    """Each service's Swagger UI, when the base URL is a local gateway (its ports follow it)."""
    try:
        port = int(base_url.rsplit(":", 1)[1].split("/")[0])
    except (IndexError, ValueError):
        return {}
    if not base_url.startswith(("http://127.0.0.1:", "http://localhost:")):
        return {}
    host = base_url.rsplit(":", 1)[0]
    return {name: f"{host}:{p}/docs" for name, p in local_service_ports(port or GATEWAY_PORT).items()}


def render(summary: DemoSummary, console: Console) -> None:
    f = summary.funnel
    console.print()
    console.print(
        f"[bold]Chorus demo[/bold]: organisation [cyan]{summary.org}[/cyan], {summary.advocates} advocates, "
        f"{summary.days} simulated days (seed {summary.seed}), in {figure(summary.elapsed_s)} s"
    )

    funnel = Table(
        title=f"Funnel ({summary.from_day} to {summary.to_day}, GET /v1/funnel)", title_justify="left"
    )
    funnel.add_column("figure")
    funnel.add_column("value", justify="right")
    for key, label in FUNNEL_FIGURES:
        funnel.add_row(label, figure(f[key]))
    funnel.add_row("revenue, net of refunds", figure(f["revenue"]))
    funnel.add_row("refunded", figure(f["refunded"]))
    console.print(funnel)

    p = summary.program
    console.print(
        f"Program (GET /v1/program): {figure(p['enrolled'])} enrolled, {figure(p['active'])} active "
        f"(ratio {figure(p['active_ratio'])}), {figure(p['trained'])} trained "
        f"(completion {figure(p['training_completion'])})"
    )

    board = Table(title="Leaderboard, all time (GET /v1/leaderboard?period=all)", title_justify="left")
    for column in ("rank", "advocate", "team", "points"):
        board.add_column(column, justify="right" if column in ("rank", "points") else "left")
    for row in summary.leaderboard:
        who = summary.names.get(row["advocate_id"], row["advocate_id"])
        board.add_row(
            figure(row["rank"]), f"{who} ({row['advocate_id']})", row["team"] or "-", figure(row["points"])
        )
    console.print(board)

    teams = Table(title="Teams, points per advocate (scope=team)", title_justify="left")
    for column in ("rank", "team", "advocates", "points", "per advocate"):
        teams.add_column(column, justify="left" if column == "team" else "right")
    for row in summary.teams:
        teams.add_row(
            figure(row["rank"]),
            row["team"] or "-",
            figure(row["active_advocates"]),
            figure(row["points"]),
            figure(row["points_per_advocate"]),
        )
    console.print(teams)

    goals = Table(title="Goals (GET /v1/goals)", title_justify="left")
    for column in ("goal", "metric", "ends", "target", "value", "progress", "forecast", "status"):
        goals.add_column(column, justify="right" if column in GOAL_FIGURES[:4] else "left")
    for g in summary.goals:
        goals.add_row(
            g["name"],
            g["metric"],
            g["ends_on"],
            figure(g["target"]),
            figure(g["value"]),
            figure(g["progress"]),
            figure(g["forecast"]),
            g["status"],
        )
    console.print(goals)

    s = summary.survey
    console.print(
        f"Survey 'Advocacy pulse' (GET /v1/surveys/{{id}}/results): {figure(s['responses'])} responses, "
        f"eNPS {figure(s['nps'])}, feeling supported {figure(s['average'])} of 5"
    )
    shown = ", ".join(f"{n} {status}" for status, n in summary.redemptions.items()) or "none"
    console.print(f"Redemptions (GET /v1/redemptions): {shown}")
    lag = max(summary.lag_s, default=0.0)
    phases = ", ".join(f"{name} {figure(seconds)} s" for name, seconds in summary.phases_s.items())
    console.print(
        f"\nThe run: {summary.requests} requests ({phases}); after each simulated day the funnel "
        f"counted everything within {figure(lag)} s (median {figure(summary.median_lag_s)} s); "
        f"recognition had scored it all {figure(summary.scoring_lag_s)} s after the last day."
    )
    console.print(
        "Simulated in real time: shares, clicks and conversions all happen now (the APIs take no "
        "past time for them), a day every few seconds; goals start on the simulated first day. "
        "Job applications and hires come through the conversions API like leads and sales."
    )
    console.print(
        f"\nOpen the dashboard: [bold]{summary.base_url}/dashboard[/bold] (organisation {summary.org})"
    )
    console.print(
        f"A token for it:     .venv/bin/chorus token --org {summary.org} --sub demo-admin --role admin"
    )
    for name, url in service_urls(summary.base_url).items():
        console.print(f"  {name:<12} API docs {url}")

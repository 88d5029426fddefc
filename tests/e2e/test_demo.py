"""`chorus demo` at a small size (10 advocates, 7 days) against the services, through the gateway:
every figure it prints is what the APIs answer when asked again afterwards.

The test asks the APIs itself (not through the demo's reader) and compares figure by figure; a
tampered summary must fail the same comparison, so it cannot pass by comparing nothing.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import httpx
import pytest
from rich.console import Console

from devtools.demo.report import FUNNEL_FIGURES, TOP, DemoSummary, figure, render
from devtools.demo.run import ADMIN, DemoOptions, run_demo
from devtools.gateway import create_gateway
from tests.e2e.conftest import RunningServices
from tests.helpers import bearer, http_server

pytestmark = pytest.mark.e2e

# A small program with a sale refunded in full, job applications, kudos, a repeat visitor and a
# self-click (hires come a week after an application: a longer run has them). The refund matters:
# the demo waits until recognition has taken the sale back, as it does.
SEED = 140
DAYS = 7


async def figures_from_the_apis(base_url: str, admin: dict[str, str], summary: DemoSummary) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, headers=admin, timeout=30) as http:

        async def get(path: str, **params: Any) -> Any:
            response = await http.get(path, params=params)
            assert response.status_code == 200, response.text
            return response.json()

        funnel = await get("/v1/funnel", **{"from": summary.from_day, "to": summary.to_day})
        program = await get("/v1/program")
        board = await get("/v1/leaderboard", period="all", limit=TOP)
        teams = await get("/v1/leaderboard", period="all", scope="team")
        goals = await get("/v1/goals", limit=50)
        results = await get(f"/v1/surveys/{summary.survey['survey_id']}/results")
        redemptions = await get("/v1/redemptions", limit=200)
    questions = {q["id"]: q for q in results["questions"]}
    statuses: dict[str, int] = {}
    for item in redemptions["items"]:
        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
    return {
        "funnel": funnel["totals"],
        "program": {
            k: program[k] for k in ("enrolled", "active", "trained", "active_ratio", "training_completion")
        },
        "leaderboard": [(r["rank"], r["advocate_id"], r["team"], r["points"]) for r in board["items"][:TOP]],
        "teams": [
            (r["rank"], r["team"], r["active_advocates"], r["points"], r["points_per_advocate"])
            for r in teams["items"][:TOP]
        ],
        "goals": {
            g["goal_id"]: (g["target"], g["value"], g["progress"], g["forecast"], g["status"])
            for g in goals["items"]
        },
        "survey": (results["responses"], questions["recommend"]["nps"], questions["support"]["average"]),
        "redemptions": statuses,
    }


def as_printed(summary: DemoSummary) -> dict[str, Any]:
    """The summary in the shape of `figures_from_the_apis`."""
    return {
        "funnel": summary.funnel,
        "program": summary.program,
        "leaderboard": [(r["rank"], r["advocate_id"], r["team"], r["points"]) for r in summary.leaderboard],
        "teams": [
            (r["rank"], r["team"], r["active_advocates"], r["points"], r["points_per_advocate"])
            for r in summary.teams
        ],
        "goals": {
            g["goal_id"]: (g["target"], g["value"], g["progress"], g["forecast"], g["status"])
            for g in summary.goals
        },
        "survey": (summary.survey["responses"], summary.survey["nps"], summary.survey["average"]),
        "redemptions": summary.redemptions,
    }


def mismatches(printed: dict[str, Any], api: dict[str, Any]) -> list[str]:
    return [
        f"{part}: printed {printed[part]!r}, the API says {api[part]!r}"
        for part in api
        if printed[part] != api[part]
    ]


async def test_a_short_demo_prints_what_the_apis_answer(services: RunningServices) -> None:
    async with http_server(create_gateway(service_urls=services.urls)) as gateway:
        summary = await run_demo(
            DemoOptions(advocates=10, days=DAYS, seed=SEED, base_url=gateway), services.settings
        )
        output = Console(file=io.StringIO(), width=200, record=True)
        render(summary, output)
        printed = output.export_text()
        admin = bearer(services.settings, org=summary.org, sub=ADMIN, roles=["admin"])
        api = await figures_from_the_apis(gateway, admin, summary)

    # The program ran: it has shares, people's clicks apart from the bots', a lead and a sale.
    funnel = api["funnel"]
    assert funnel["shares"] > 0 and funnel["clicks"] > 0 and funnel["bot_clicks"] > 0, funnel
    assert funnel["self_clicks"] > 0 and funnel["unique_clicks"] < funnel["clicks"], funnel
    assert funnel["leads"] > 0 and funnel["sales"] > 0 and funnel["revenue"], funnel
    assert funnel["refunds"] > 0 and funnel["refunded"], funnel
    assert funnel["applications"] > 0, funnel
    assert api["program"]["enrolled"] == 10 and api["program"]["trained"] > 0
    assert api["leaderboard"] and api["teams"] and len(api["goals"]) == 7
    assert api["survey"][0] > 0

    assert mismatches(as_printed(summary), api) == []
    # What was printed is the summary: every figure of it appears in the text.
    for value in [
        *(funnel[key] for key, _ in FUNNEL_FIGURES),
        *api["program"].values(),
        *(row[3] for row in api["leaderboard"]),
        *(row[4] for row in api["teams"]),
        *(part for goal in api["goals"].values() for part in goal),
        *api["survey"],
    ]:
        assert figure(value) in printed, f"{value!r} is not in the printed summary:\n{printed}"
    assert figure(funnel["revenue"]) in printed and figure(funnel["refunded"]) in printed
    assert len(summary.lag_s) == DAYS

    # The comparison fails when a printed figure differs from the API's.
    tampered = copy.deepcopy(summary)
    tampered.funnel["leads"] += 1
    tampered.goals[0]["forecast"] += 0.5
    assert len(mismatches(as_printed(tampered), api)) == 2

"""The baseline: a bare Starlette route answering a leaderboard-sized JSON body, nothing else."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

# The same shape and size as `GET /v1/leaderboard?limit=50`: 50 rows, a cursor and `me`.
ROWS = [
    {
        "rank": i + 1,
        "points": 10_000 - 7 * i,
        "advocate_id": f"adv{i:06d}",
        "team": f"team{i % 50:02d}",
        "is_me": False,
        "active_advocates": None,
        "points_per_advocate": None,
    }
    for i in range(50)
]


async def leaderboard(request: Request) -> JSONResponse:
    # Serialised on every request, as the real endpoint does.
    return JSONResponse(
        {
            "period": "week",
            "period_key": "week:2026-W48",
            "scope": "org",
            "team": None,
            "items": ROWS,
            "next_cursor": "eyJwIjo5NjU3LCJhIjoiYWR2MDAwMDQ5IiwiciI6NTAsIm4iOjUwfQ",
            "me": ROWS[25],
        }
    )


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(routes=[Route("/v1/leaderboard", leaderboard), Route("/healthz", healthz)])

"""Routes of the leaderboards."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic_core import to_json

from services.recognition.leaderboards import schemas
from services.recognition.leaderboards.domain import Period
from services.recognition.leaderboards.service import LeaderboardService
from services.recognition.web import TAGS, Cursor, Limit, Member
from shared.app import app_state
from shared.clock import AwareRequestTime
from shared.dependencies import on_loop
from shared.errors import NOT_FOUND_RESPONSE

router = APIRouter(prefix="/v1", tags=TAGS)


Service = Annotated[LeaderboardService, Depends(app_state("leaderboards"))]


@dataclass(frozen=True)
class Board:
    """Which board, for both routes: the period, a team's board or the organisation's, and a
    contest's period instead of the calendar's."""

    period: Period = Period.WEEK
    team: Annotated[str | None, Query(min_length=1, max_length=200)] = None
    contest_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None


AskedBoard = Annotated[Board, Depends(on_loop(Board))]


def _board_response(board: Board, period_key: str, scope: str, **page: Any) -> Response:
    """A LeaderboardOut sent as built: rows come from standings already checked, up to 201 to a
    page, and validating them again as models (and FastAPI's validate-then-serialise of the
    response) cost more than the leaderboard itself. `response_model` still documents it, and
    the tests validate what is sent against it."""
    out = {"period": board.period, "period_key": period_key, "scope": scope, **page}
    return Response(to_json(out), media_type="application/json")


@router.get(
    "/leaderboard",
    response_model=schemas.LeaderboardOut,
    summary="A leaderboard",
    responses=NOT_FOUND_RESPONSE,  # a contest that is not there
)
async def leaderboard(
    principal: Member,
    service: Service,
    board: AskedBoard,
    scope: Literal["org", "team"] = "org",
    at: Annotated[
        AwareRequestTime | None, Query(description="a moment inside the period; default now")
    ] = None,
    cursor: Cursor = None,
    limit: Limit = 50,
) -> Response:
    """scope=org ranks advocates of the organisation; scope=team with `team` ranks that team's advocates;
    scope=team without `team` ranks teams by points per active advocate. Advocates who opted out of public
    ranking are not listed, but `me` always shows your own standing. Served from standings ranked in memory
    from the board projection and rebuilt every few seconds (`as_of`).
    """
    key = await service.board_key(principal.org, board.period, board.contest_id, at)
    if scope == "team" and board.team is None:
        teams = await service.team_leaderboard(principal.org, key)
        return _board_response(
            board, key, "team", team=None, items=teams.rows, next_cursor=None, me=None, as_of=teams.as_of
        )
    board_team = board.team if scope == "team" else None
    rows, next_cursor, me, standings = await service.leaderboard(
        principal.org, principal.sub, key, board_team, cursor, limit
    )
    return _board_response(
        board,
        key,
        "team" if board_team else "org",
        team=board_team,
        items=rows,
        next_cursor=next_cursor,
        me=me,
        as_of=standings.as_of,
    )


@router.get(
    "/leaderboard/around-me",
    response_model=schemas.LeaderboardOut,
    summary="The board around me",
    responses=NOT_FOUND_RESPONSE,  # a contest that is not there
)
async def around_me(
    principal: Member,
    service: Service,
    board: AskedBoard,
    size: Annotated[int, Query(ge=1, le=25)] = 3,
) -> Response:
    """Up to `size` advocates above and below you, with you in the middle."""
    key = await service.board_key(principal.org, board.period, board.contest_id, None)
    rows, me, standings = await service.around_me(principal.org, principal.sub, key, board.team, size)
    return _board_response(
        board,
        key,
        "team" if board.team else "org",
        team=board.team,
        items=rows,
        next_cursor=None,
        me=me,
        as_of=standings.as_of,
    )

"""What the routes of every metrics module share: who may call, paging parameters, CSV answers.

Every report answers JSON by default and CSV when asked with `Accept: text/csv`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from services.metrics.modules import MetricsModules
from shared.app import app_state
from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require
from shared.pagination import Cursor as Cursor  # the page parameters every list takes
from shared.pagination import Limit as Limit

Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Manager = Annotated[Principal, Depends(require(Role.ADMIN, Role.EDITOR))]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Integration = Annotated[Principal, Depends(require(API_KEY_ROLE, Role.ADMIN))]
Anyone = Annotated[Principal, Depends(require(API_KEY_ROLE, *ANY_MEMBER))]
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {"schema": {"type": "string"}}},
        "description": "JSON, or CSV on Accept: text/csv",
    }
}


Modules = Annotated[MetricsModules, Depends(app_state("service"))]


def _wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def json_or_csv(request: Request, result: dict[str, Any], rows: list[dict[str, Any]], name: str) -> Any:
    """The report as JSON, or its `rows` as CSV when the caller accepts text/csv."""
    return _csv_response(rows, name) if _wants_csv(request) else result


def _csv_response(rows: list[dict[str, Any]], name: str) -> Response:
    return Response(
        to_csv(rows),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


# A cell starting with one of these is a formula to a spreadsheet (CSV injection): it gets a
# leading apostrophe, which spreadsheets show as text. Numbers are left as they are, written as
# text too (a net revenue of "-50.00"): an apostrophe would keep them out of a SUM.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


def neutralised(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    """Flat CSV of report rows; a dict cell (revenue per currency) becomes one column per key.
    Text that a spreadsheet would run as a formula is neutralised (`neutralised`)."""
    flat: list[dict[str, Any]] = []
    columns: list[str] = []
    for row in rows:
        out: dict[str, Any] = {}
        for name, value in row.items():
            if isinstance(value, dict):
                for sub, sub_value in value.items():
                    out[neutralised(f"{name}_{sub}")] = neutralised(sub_value)
            elif isinstance(value, list):
                out[name] = neutralised(";".join(str(v) for v in value))
            else:
                out[name] = neutralised(value)
        for name in out:
            if name not in columns:
                columns.append(name)
        flat.append(out)
    buffer = io.StringIO()
    # RFC 4180 line ends: a cell holding a carriage return is quoted, and stays one cell.
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()

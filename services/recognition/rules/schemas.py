"""HTTP models of the rules."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictInt

from services.recognition.rules.domain import Rules
from shared.pagination import Page
from shared.schemas import RequestBody, ResponseBody


class RulesOut(ResponseBody):
    version: int = Field(
        description="0 means the organisation has not published rules: these are the defaults"
    )
    rules: Rules


class RulesIn(RequestBody):
    rules: Rules
    expected_version: StrictInt | None = Field(
        None, ge=0, description="the version you edited; a 409 if someone published another since"
    )


class RuleVersionOut(ResponseBody):
    version: int
    rules: Rules
    created_by: str
    created_at: datetime


class RuleVersionPage(Page[RuleVersionOut]):
    pass

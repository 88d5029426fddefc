"""A stored version as an ETag, and If-Match: a write naming the versions its client read applies
only to one of them (RFC 9110 §13.1.1), so an editor who read an older version gets a 412 instead
of undoing another's change unseen. SCIM's resources (RFC 7644 §3.14) and the /v1 routes that
replace a resource take it the same way: an optional `if_match: IfMatch` checked with
`check_if_match`, and the answer's `ETag` from `etag` (documented with `ETAG_HEADER`)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Header

from shared.errors import PreconditionFailed

# The header a write takes the versions it applies to from.
IfMatch = Annotated[str | None, Header(alias="If-Match")]

# An answer's ETag, in a route's `responses=`.
ETAG_HEADER: dict[str, Any] = {
    "ETag": {
        "schema": {"type": "string"},
        "description": "the version answered: send it as If-Match to replace this version only",
    }
}

ETAG_RE = re.compile(r'\s*(?:W/)?"([^"]*)"\s*')


def etag(version: int) -> str:
    return f'W/"{version}"'


def check_if_match(if_match: str | None, version: int) -> bool:
    """Whether the write must find the resource still at `version` (the one read) when it
    writes: not without If-Match or with `*`, yes when If-Match names it; a 412 otherwise."""
    if if_match is None or if_match.strip() == "*":
        return False
    versions = {m.group(1) for part in if_match.split(",") if (m := ETAG_RE.fullmatch(part))}
    if str(version) not in versions:
        raise PreconditionFailed(
            f"the resource is at version {etag(version)}, not {if_match.strip()}: read it again"
        )
    return True

"""If-Match against a stored version (shared/preconditions.py): SCIM's resources and the /v1
replacements that take it."""

from __future__ import annotations

import pytest

from shared.errors import PreconditionFailed
from shared.preconditions import check_if_match, etag


def test_if_match_accepts_the_current_version_or_a_star_and_refuses_another() -> None:
    check_if_match(None, 3)
    check_if_match("*", 3)
    check_if_match('W/"3"', 3)
    check_if_match('"3"', 3)
    check_if_match('W/"2", W/"3"', 3)
    with pytest.raises(PreconditionFailed) as refused:
        check_if_match('W/"2"', 3)
    assert refused.value.status == 412 and etag(3) in refused.value.detail
    with pytest.raises(PreconditionFailed):
        check_if_match("3", 3)  # not an entity tag

"""The sharing service refuses to run in production on a secret anyone can read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.sharing.settings import DEV_VISITOR_SECRET, SharingSettings


def test_prod_refuses_the_dev_visitor_hash_secret() -> None:
    with pytest.raises(ValidationError, match="CHORUS_VISITOR_HASH_SECRET"):
        SharingSettings(environment="prod")
    with pytest.raises(ValidationError, match="CHORUS_VISITOR_HASH_SECRET"):
        SharingSettings(environment="prod", visitor_hash_secret="short")


def test_prod_runs_on_its_own_secret_and_dev_on_the_default() -> None:
    secret = "a-deployment-secret-of-enough-length-0123"
    assert SharingSettings(environment="prod", visitor_hash_secret=secret).visitor_hash_secret == secret
    assert SharingSettings().visitor_hash_secret == DEV_VISITOR_SECRET

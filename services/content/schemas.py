"""What the HTTP models of every content module share: field types (their bases: shared/schemas.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import StringConstraints

from services.content.common import WEB_URL_PATTERN
from shared.fields import LINE

# One list of networks for content and sharing, re-exported for the content modules.
from shared.networks import Network as Network

ContentType = Literal["article", "video", "image", "job_opening", "event", "post"]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", max_length=35)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100), LINE]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=50), LINE]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2048), LINE]
WebUrl = Annotated[str, StringConstraints(max_length=2048, pattern=WEB_URL_PATTERN)]

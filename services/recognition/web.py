"""What every recognition module's routes share: who may call, page parameters, the
Idempotency-Key header (its use: `once: Idempotent`, shared/idempotency.py).

Each module has its own router (`<module>/api.py`); main.py includes them all under /v1.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated

from fastapi import Depends

from shared.auth import ANY_MEMBER, API_KEY_ROLE, Principal, Role, require
from shared.pagination import Cursor as Cursor  # the page parameters every list takes
from shared.pagination import Limit as Limit

TAGS: list[str | Enum] = ["recognition"]
Member = Annotated[Principal, Depends(require(*ANY_MEMBER))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Fulfiller = Annotated[Principal, Depends(require(Role.ADMIN, API_KEY_ROLE))]

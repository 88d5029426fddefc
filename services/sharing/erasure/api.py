"""Erasure's HTTP route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from services.sharing.advocates.api import Member
from services.sharing.erasure.service import ErasureService
from shared.app import app_state

router = APIRouter(prefix="/v1", tags=["advocates"])


Service = Annotated[ErasureService, Depends(app_state("erasure"))]


@router.delete(
    "/advocates/{advocate_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    summary="Erase an advocate (the advocate themself or an admin)",
    responses={
        409: {
            "description": "a group of the organisation's directory they are in kept changing while they left"
            " it (its identity provider writing it): nothing is erased; a retry erases them"
        }
    },
)
async def erase_advocate(
    advocate_id: Annotated[str, Path(min_length=1, max_length=200)], principal: Member, service: Service
) -> Response:
    """Removes the advocate's personal data from sharing and emits chorus.advocate.erased, which every service
    honours. Their links keep working, attributed to an anonymous id.
    """
    await service.erase(principal, advocate_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

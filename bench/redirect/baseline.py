"""The baseline: a bare Starlette route answering the same 302 as the redirect, nothing else."""

from __future__ import annotations

import secrets

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

TARGET = (
    "https://www.example.com/blog/new-product?ref=site&utm_source=linkedin&utm_medium=employee_advocacy"
    "&utm_campaign=our-new-product&utm_content=0193c0ffee00aabbccddeeff&chorus_cid="
)


async def redirect(request: Request) -> Response:
    # Same work a 302 with a fresh click id needs, and the same headers as the real redirect.
    location = f"{TARGET}{secrets.token_urlsafe(12)}#top"
    return Response(
        status_code=302,
        headers={
            "location": location,
            "cache-control": "no-store",
            "referrer-policy": "no-referrer-when-downgrade",
        },
    )


app = Starlette(routes=[Route("/r/{code}", redirect)])

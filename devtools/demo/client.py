"""The demo's HTTP client: the public APIs with dev tokens and an API key, as a frontend and an
integration call them, never the database."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import httpx

from shared.auth import issue_dev_token
from shared.settings import ChorusSettings

# Answers worth another try: rate limited (after Retry-After), a store or service briefly away.
RETRIED_STATUSES = (429, 502, 503, 504)
ATTEMPTS = 8
MAX_RETRY_WAIT_S = 61.0


def no_cookies() -> CookieJar:
    """A jar that keeps nothing: the demo's callers are many people, and the advocate cookie a
    share's answer sets must not turn a visitor's click into the advocate's own."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class DemoError(RuntimeError):
    """A call the demo needed was refused; says which and why (the problem+json detail)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of the refusal, if one came


def problem_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    if isinstance(body, dict):
        return str(body.get("detail") or body.get("title") or body)
    return str(body)


def refused(method: str, path: str, response: httpx.Response) -> DemoError:
    return DemoError(
        f"{method} {path} answered {response.status_code}: {problem_of(response)}", response.status_code
    )


@dataclass
class Api:
    """One organisation's view of the APIs behind one base URL (the gateway)."""

    http: httpx.AsyncClient
    base_url: str
    org: str
    settings: ChorusSettings
    concurrency: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(12))
    api_key: str | None = None
    _tokens: dict[tuple[str, tuple[str, ...]], str] = field(default_factory=dict)
    requests: int = 0

    def as_user(self, sub: str, *roles: str) -> dict[str, str]:
        key = (sub, roles)
        if key not in self._tokens:
            self._tokens[key] = issue_dev_token(self.settings, org=self.org, sub=sub, roles=list(roles))
        return {"Authorization": f"Bearer {self._tokens[key]}"}

    def as_integration(self) -> dict[str, str]:
        if self.api_key is None:
            raise DemoError("the demo has no API key yet")
        return {"X-API-Key": self.api_key}

    async def call(
        self,
        method: str,
        path: str,
        auth: Mapping[str, str],
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        key: str | None = None,
        already: int | None = None,
    ) -> Any:
        """The JSON answer of a 2xx; retried on 429/5xx after the wait the service asks for.
        `key` is the Idempotency-Key, so a create retried after a lost answer happens once; where
        a route takes none, `already` is the status that says a retry found it done (None back)."""
        headers = dict(auth)
        if key is not None:
            headers["Idempotency-Key"] = f"{self.org}:{key}"
        url = self.base_url + path
        for attempt in range(1, ATTEMPTS + 1):
            async with self.concurrency:
                self.requests += 1
                try:
                    response = await self.http.request(method, url, headers=headers, json=json, params=params)
                except httpx.TransportError as exc:
                    if attempt == ATTEMPTS:
                        raise DemoError(f"{method} {path}: {exc!r}") from exc
                    response = None
            if response is not None and response.status_code not in RETRIED_STATUSES:
                if response.is_success:
                    return response.json() if response.content else None
                if response.status_code == already and attempt > 1:
                    return None
                raise refused(method, path, response)
            if response is not None and attempt == ATTEMPTS:
                raise refused(method, path, response)
            wait = 0.2 * attempt
            if response is not None and (retry_after := response.headers.get("retry-after")):
                wait = min(float(retry_after), MAX_RETRY_WAIT_S)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def visit(
        self, visitors: httpx.AsyncClient, short_url: str, headers: Mapping[str, str], method: str = "GET"
    ) -> str:
        """Follow a tracked link as a visitor's browser does (one request; the 302 is not
        followed: the landing page is not ours); the Location the redirect answered."""
        async with self.concurrency:
            self.requests += 1
            response = await visitors.request(method, short_url, headers=dict(headers))
        if response.status_code != 302:
            raise DemoError(f"{method} {short_url} answered {response.status_code}, not a redirect")
        return str(response.headers["location"])

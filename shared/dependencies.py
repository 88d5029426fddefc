"""Route dependencies built on the event loop.

FastAPI runs a dependency that is not a coroutine function (a class given to `Depends`, a plain
`def`) in its thread pool: a hop to a worker thread and back on every request, for what is a
constructor call. On the leaderboard that hop cost about 4% of the requests a second. So a class
that routes depend on is given as `Depends(on_loop(TheClass))`, and a dependency function is an
`async def`; tests/unit/shared/test_route_dependencies.py holds every route to it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, get_type_hints

T = TypeVar("T")


def on_loop(cls: type[T]) -> Callable[..., Awaitable[T]]:
    """A dependency that builds `cls` from the request as `Depends(cls)` would (the same
    parameters, so the same OpenAPI document and the same 422s), on the event loop."""
    # The parameters with their annotations resolved: FastAPI would resolve strings in this
    # module's globals, not in those of the module that declares `cls`.
    hints = get_type_hints(cls.__init__, include_extras=True)
    parameters = [
        p.replace(annotation=hints.get(p.name, p.annotation))
        for p in inspect.signature(cls).parameters.values()
    ]

    async def build(**values: Any) -> T:
        return cls(**values)

    build.__signature__ = inspect.Signature(parameters, return_annotation=cls)  # type: ignore[attr-defined]
    build.__name__ = build.__qualname__ = cls.__name__
    build.__doc__ = cls.__doc__
    return build

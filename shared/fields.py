"""Field markers for request schemas that hold to what the OpenAPI document says of them.

pydantic's lax `int` takes `true` and `false` as 1 and 0, which JSON Schema's `integer` does not;
its `StrictInt` refuses 3.0, which JSON Schema counts as an integer. An integer field written
`Annotated[int, Field(ge=..., le=...), NOT_BOOLEAN]` is JSON Schema's: any integral number in
range, never a boolean (the marker goes last, so the range stays in the document).
"""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


NOT_BOOLEAN = BeforeValidator(_not_a_boolean)

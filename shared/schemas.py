"""The bases of the HTTP models, so that the OpenAPI document says what the wire carries.

- `RequestBody`: a field the model does not know is refused (422), not ignored, so a misspelt
  field is an error the client sees.
- `ResponseBody`: what Chorus sends, an answer or a webhook's body. Every field is in every one
  (defaults too), so the document marks every field required, and a generated client types it
  as always there (`next_cursor: string | null`, not `next_cursor?: string | null`). Never for
  a model that requests use too: those keep their defaults optional.
- Both take numbers as JSON has them: finite. Python's JSON reader takes `NaN` and `Infinity`,
  which are not JSON; a request that sends one gets a 422. An answer that would hold one is a
  server error (500), where pydantic would write `null` for a field the document calls a number.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


def _every_field_sent(schema: dict[str, Any]) -> None:
    schema["required"] = list(schema.get("properties", {}))


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ResponseBody(BaseModel):
    # In both schema modes: FastAPI documents a webhook's body as a request (validation mode).
    model_config = ConfigDict(json_schema_extra=_every_field_sent, allow_inf_nan=False)

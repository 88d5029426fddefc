"""The bases of the HTTP models, so that the OpenAPI document says what the wire carries.

- `RequestBody`: a field the model does not know is refused (422), not ignored, so a misspelt
  field is an error the client sees.
- `ResponseBody`: every field is in every answer (FastAPI writes defaults too), so the document
  marks every field required, and a generated client types it as always there
  (`next_cursor: string | null`, not `next_cursor?: string | null`). For models of answers only:
  FastAPI would split a model used both ways into `X-Input` and `X-Output`, renaming a client's
  type (the REST contract check fails on that).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ResponseBody(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)

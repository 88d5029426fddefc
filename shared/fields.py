"""Field markers for request schemas that hold to what the OpenAPI document says of them.

pydantic's lax `int` takes `true` and `false` as 1 and 0, which JSON Schema's `integer` does not;
its `StrictInt` refuses 3.0, which JSON Schema counts as an integer. An integer field written
`Annotated[int, Field(ge=..., le=...), NOT_BOOLEAN]` is JSON Schema's: any integral number in
range, never a boolean (the marker goes last, so the range stays in the document).

A string a person or a directory writes is `Line` (a name, a title, a tag, an id) or `Text` (a
paragraph): neither takes a control character, and the pattern that says so is in the document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any

from pydantic import BeforeValidator, GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema


def _not_a_boolean(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be an integer, not a boolean")
    return value


NOT_BOOLEAN = BeforeValidator(_not_a_boolean)


# Control characters have no place in what a person or a directory writes, and they break what
# reads Chorus's data downstream: NUL ends a C string and PostgreSQL refuses it in text, an escape
# sequence rewrites a terminal, a stray line break splits a CSV row or a log line. CONTROLS are
# C0, DEL and C1; TEXT_CONTROLS spare the tab and line breaks a paragraph may hold.
CONTROLS = r"\x00-\x1F\x7F-\x9F"
TEXT_CONTROLS = r"\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F"


# The validation context of a request model read back from the store (`context=AS_STORED`): what
# was stored passed the rules of its day, and a rule added since (its characters, a cap's bound)
# must not make it unreadable.
AS_STORED = {"stored": True}


def read_as_stored(info: core_schema.ValidationInfo) -> bool:
    """Whether a validator checks a value read back from the store (`AS_STORED`)."""
    return bool((info.context or {}).get("stored"))


@dataclass(frozen=True)
class Characters:
    """A string field's characters: one pattern the field is checked against and documented
    with, and the message a refused value gets. Goes last, after the length limits, so that they
    keep their own messages and stay in the document."""

    pattern: str
    message: str

    @cached_property
    def _allowed(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    def allows(self, value: str) -> bool:
        return self._allowed.fullmatch(value) is not None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        def check(value: str, info: core_schema.ValidationInfo) -> str:
            if not self.allows(value) and not read_as_stored(info):
                raise PydanticCustomError("characters", self.message)
            return value

        return core_schema.with_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


LINE = Characters(rf"^[^{CONTROLS}]*$", "must be one line, without control characters")
TEXT = Characters(
    rf"^[^{TEXT_CONTROLS}]*$", "must not hold control characters (tabs and line breaks are fine)"
)
VISIBLE_LINE = Characters(
    rf"^[^{CONTROLS}]*[^\s{CONTROLS}][^{CONTROLS}]*$",
    "must be one line with a visible character, without control characters",
)
# A person's words in a request: a name, a title, a tag, an id (one line), or a paragraph.
Line = Annotated[str, LINE]
Text = Annotated[str, TEXT]

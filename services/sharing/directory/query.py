"""SCIM filters (RFC 7644 §3.4.2.2) as MongoDB queries, for the directory's store only.

scim2-models parses and checks a filter against the resource (`ScimFilter[User]`: syntax,
operators that fit the attribute's type, values of the right type); a `FilterVisitor` walks its
tree into a query on the columns the store keeps beside each resource. An attribute the resource
does not declare is an `invalidFilter` error; one it declares but the store keeps no column for
is one too, saying filtering on it is not offered (docs/ARCHITECTURE.md lists what is).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from scim2_models import InvalidFilterException, ScimFilter
from scim2_models.path import (
    AttrPath,
    CompareOperator,
    Comparison,
    FilterVisitor,
    LogicalExpr,
    LogicalOperator,
    Not,
    Present,
    ValuePath,
)

from services.sharing.directory.domain import comparison_key
from shared.mongo import Document

MAX_FILTER_LENGTH = 2000


@dataclass(frozen=True)
class Column:
    field: str
    kind: str  # "key": a case-insensitive string, stored as its comparison key; "exact"; "bool"; "date"


CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"

# Attribute path (lower case, sub-attribute after a dot) -> the column that answers it.
USER_COLUMNS: dict[str, Column] = {
    "id": Column("scim_id", "exact"),
    "username": Column("user_name_key", "key"),
    "externalid": Column("external_id", "exact"),
    "displayname": Column("display_name_key", "key"),
    "active": Column("active", "bool"),
    "emails": Column("emails", "key"),
    "emails.value": Column("emails", "key"),
    "meta.created": Column("created", "date"),
    "meta.lastmodified": Column("last_modified", "date"),
}
GROUP_COLUMNS: dict[str, Column] = {
    "id": Column("scim_id", "exact"),
    "displayname": Column("display_name_key", "key"),
    "externalid": Column("external_id", "exact"),
    "members": Column("members", "exact"),
    "members.value": Column("members", "exact"),
    "meta.created": Column("created", "date"),
    "meta.lastmodified": Column("last_modified", "date"),
}

_RANGE = {
    CompareOperator.gt: "$gt",
    CompareOperator.ge: "$gte",
    CompareOperator.lt: "$lt",
    CompareOperator.le: "$lte",
}


class _ToMongo(FilterVisitor[Document]):
    def __init__(self, parsed: ScimFilter[Any], columns: dict[str, Column], core: str) -> None:
        self.parsed = parsed
        self.columns = columns
        self.core = core
        self.prefix: str | None = None  # inside a value selection: `emails[value eq "x"]`

    def column(self, attr_path: AttrPath) -> Column:
        # Unknown attributes are refused here (the parse leaves them to the endpoint); inside a
        # value selection the parse checked them against the selected attribute already.
        if self.prefix is None:
            self.parsed.resolve(attr_path, strict=True)
        if attr_path.uri is not None and attr_path.uri.lower() != self.core.lower():
            raise InvalidFilterException(detail=f"filtering on {attr_path} is not offered")
        name = attr_path.attr.lower()
        if attr_path.sub_attr:
            name = f"{name}.{attr_path.sub_attr.lower()}"
        if self.prefix is not None:
            name = f"{self.prefix}.{name}"
        column = self.columns.get(name)
        if column is None:
            offered = ", ".join(sorted(self.columns))
            raise InvalidFilterException(
                detail=f"filtering on {attr_path} is not offered (only on {offered})"
            )
        return column

    def visit_comparison(self, node: Comparison) -> Document:
        column = self.column(node.attr_path)
        value = _value(column, node.value, str(node.attr_path))
        op = node.op
        if op == CompareOperator.eq:
            return {column.field: value}
        if op == CompareOperator.ne:
            return {column.field: {"$ne": value}}
        if op in _RANGE:
            return {column.field: {_RANGE[op]: value}}
        text = re.escape(str(value))
        pattern = {CompareOperator.co: text, CompareOperator.sw: f"^{text}", CompareOperator.ew: f"{text}$"}[
            op
        ]
        return {column.field: {"$regex": pattern}}

    def visit_present(self, node: Present) -> Document:
        field = self.column(node.attr_path).field
        return {field: {"$exists": True, "$nin": [None, "", []]}}

    def visit_not(self, node: Not) -> Document:
        return {"$nor": [self.visit(node.expr)]}

    def visit_logical_expr(self, node: LogicalExpr) -> Document:
        key = "$and" if node.op == LogicalOperator.and_ else "$or"
        return {key: [self.visit(term) for term in node.terms]}

    def visit_value_path(self, node: ValuePath) -> Document:
        if self.prefix is not None or node.attr_path.sub_attr:
            raise InvalidFilterException(detail=f"filtering on {node} is not offered")
        self.parsed.resolve(node.attr_path, strict=True)
        self.prefix = node.attr_path.attr.lower()
        try:
            return self.visit(node.val_filter)
        finally:
            self.prefix = None


def _value(column: Column, raw: Any, attr: str) -> Any:
    if column.kind == "bool":
        if not isinstance(raw, bool):
            raise InvalidFilterException(detail=f"{attr} compares with true or false")
        return raw
    if column.kind == "date":
        if isinstance(raw, datetime):
            return raw
        try:
            return datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidFilterException(detail=f"{attr} compares with a date-time, not {raw!r}") from exc
    if not isinstance(raw, str):
        raise InvalidFilterException(detail=f"{attr} compares with a string, not {raw!r}")
    return comparison_key(raw) if column.kind == "key" else raw


def to_query(text: str | None, model: Any, columns: dict[str, Column], core: str) -> Document:
    """The MongoDB query for a SCIM filter on `model` (every resource without one);
    InvalidFilterException names the fault."""
    if text is None:
        return {}
    if len(text) > MAX_FILTER_LENGTH:
        raise InvalidFilterException(detail=f"the filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        parsed: ScimFilter[Any] = ScimFilter[model](text)  # type: ignore[valid-type]
    except (ValueError, TypeError) as exc:  # a value the attribute cannot take, say
        raise InvalidFilterException(detail=str(exc)) from exc
    return _ToMongo(parsed, columns, core).visit(parsed.ast)

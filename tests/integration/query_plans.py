"""Reading a query's plan from `explain()`: which stages the winning plan runs."""

from __future__ import annotations

from typing import Any


def plan_stages(explain: dict[str, Any]) -> set[str]:
    """Every stage of the winning plan (IXSCAN, FETCH, COLLSCAN, ...), however deep."""
    stages: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("stage"), str):
                stages.add(node["stage"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(explain["queryPlanner"]["winningPlan"])
    return stages


def uses_an_index(explain: dict[str, Any]) -> bool:
    stages = plan_stages(explain)
    return "IXSCAN" in stages and "COLLSCAN" not in stages

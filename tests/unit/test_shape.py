"""The shape every service keeps (docs/DEVELOPING.md, "Layout"): small files, a module per
business concept whose service only orchestrates, stores that own the Mongo documents and reach
collections only through the tenant-scoped access of shared/tenancy.py."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
MAX_LINES = 450
# What a module says (in its service.py or __init__.py docstring) when its service is longer
# than its domain, with the reason.
LONGER_REASON = re.compile(r"longer than (its |the )?domain", re.IGNORECASE)


def python_files() -> list[Path]:
    return sorted(SERVICES.rglob("*.py"))


def test_no_file_under_services_is_over_the_limit() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in python_files()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_mongo_document_leaves_a_store() -> None:
    leaking = [
        str(p.relative_to(ROOT))
        for p in python_files()
        if p.name in ("service.py", "api.py") and re.search(r"\bDocument\b|[\"']_id[\"']", p.read_text())
    ]
    assert leaking == []


def test_a_module_service_is_no_longer_than_its_domain_or_says_why() -> None:
    unexplained = []
    for service in SERVICES.rglob("service.py"):
        domain = service.with_name("domain.py")
        if not domain.exists():
            continue
        text = service.read_text()
        package = service.with_name("__init__.py")
        says_why = LONGER_REASON.search(text + (package.read_text() if package.exists() else ""))
        if len(text.splitlines()) > len(domain.read_text().splitlines()) and not says_why:
            unexplained.append(str(service.relative_to(ROOT)))
    assert unexplained == []


def test_stores_reach_collections_only_through_the_tenant_scoped_access() -> None:
    direct = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in python_files()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"\bdb\[|\.db\[", line)
    ]
    assert direct == []

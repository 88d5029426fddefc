"""A CHORUS_* variable that looks like a setting misspelt is named at start (shared/settings.py):
no service reads it, so the service would run on the default without a word."""

from __future__ import annotations

import re
from pathlib import Path

from shared.settings import misspelt_settings, setting_names

REPO = Path(__file__).resolve().parents[3]


def test_a_near_miss_is_named_with_the_setting_it_looks_like() -> None:
    known = setting_names()
    environ = {
        "CHORUS_KAFKA_BOOTSTAP": "kafka:9093",  # a letter dropped
        "CHORUS_CORS_ALLOWED_ORIGIN": "https://app.example.com",  # the singular
        "CHORUS_MONGO_URL": "mongodb://db/",  # a setting
        "CHORUS_SOMETHING_ELSE": "x",  # like no setting: the tooling's, or someone's own
        "KAFKA_BOOTSTRAP": "kafka:9093",  # not Chorus's
    }
    assert misspelt_settings(environ, known) == [
        "CHORUS_CORS_ALLOWED_ORIGIN is not a Chorus setting and is ignored;"
        " did you mean CHORUS_CORS_ALLOWED_ORIGINS?",
        "CHORUS_KAFKA_BOOTSTAP is not a Chorus setting and is ignored; did you mean CHORUS_KAFKA_BOOTSTRAP?",
    ]


def test_every_service_setting_is_known_whichever_service_reads_it() -> None:
    known = setting_names()
    # One ConfigMap may hold every service's settings: sharing's is no typo in metrics' pod.
    assert {"CHORUS_KAFKA_BOOTSTRAP", "CHORUS_CLICK_SPOOL_PATH", "CHORUS_PUBLIC_BASE_URL"} <= known


def test_no_variable_the_repository_sets_is_taken_for_a_misspelt_setting() -> None:
    """The dev and test tooling, the manifests and the docs name CHORUS_* variables of their own
    (the stack's ports, its state directory); none may look like a setting misspelt, or every
    service started with it would warn."""
    named: set[str] = set()
    for folder in ("devtools", "tests", "deploy", "docs", "bench", ".ci"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and "node_modules" not in path.parts and path.suffix not in {".tar", ".gz"}:
                named.update(re.findall(r"CHORUS_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="ignore")))
    named.discard("CHORUS_CORS_ALLOWED_ORIGIN")  # this file's own example of a misspelling
    named.discard("CHORUS_KAFKA_BOOTSTAP")
    assert len(named) > 40
    assert misspelt_settings(dict.fromkeys(named, ""), setting_names()) == []

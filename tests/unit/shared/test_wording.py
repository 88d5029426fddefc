"""The organisation's wording rules, one for content and sharing (shared/wording.py)."""

from __future__ import annotations

from shared.wording import blocked_words_in, keeps_disclosure


def test_blocked_words_are_whole_words_or_phrases_in_any_case_in_the_rules_order() -> None:
    blocked = ["get rich", "free", "c++", ""]
    assert blocked_words_in("Freedom, and freely given", blocked) == []
    assert blocked_words_in("FREE to GET   rich", blocked) == ["free"]  # a phrase keeps its spacing
    assert blocked_words_in("Learn C++ and get rich, free!", blocked) == ["get rich", "free", "c++"]


def test_the_disclosure_is_found_in_any_case_and_none_asks_nothing() -> None:
    assert keeps_disclosure("Proud #employee of Acme", "#Employee")
    assert not keeps_disclosure("Proud of Acme", "#Employee")
    assert keeps_disclosure("anything", None) and keeps_disclosure("anything", "")

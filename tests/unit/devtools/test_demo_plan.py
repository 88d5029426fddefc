"""The demo's plan (devtools/demo/plan.py): the same seed plays the same program, and the program
looks like one (skewed activity, every content type, visits before the leads they bring)."""

from __future__ import annotations

from collections import Counter

from devtools.demo.plan import DISCLOSURE, Visit, kudos_allowance, make_plan
from services.content.library.domain import CONTENT_TYPES
from shared.networks import POST_LIMITS, post_length


def test_a_seed_always_gives_the_same_program_and_another_seed_another() -> None:
    assert make_plan(3, 20, 10) == make_plan(3, 20, 10)
    assert make_plan(3, 20, 10).shares != make_plan(4, 20, 10).shares


def test_a_few_advocates_do_most_of_the_sharing_and_some_never_share() -> None:
    plan = make_plan(7, 50, 28)
    per_advocate = sorted(Counter(s.advocate for s in plan.shares).values(), reverse=True)
    assert sum(per_advocate[:10]) > 0.5 * len(plan.shares)
    assert len(per_advocate) < len(plan.advocates)
    assert all(plan.advocates[s.advocate].trains for s in plan.shares), "only trained advocates share"


def test_every_content_type_is_there_with_captions_in_two_languages_for_the_video() -> None:
    plan = make_plan(7, 10, 3)
    assert {c.type for c in plan.content} == set(CONTENT_TYPES)
    video = next(c for c in plan.content if c.type == "video")
    assert {language for _, language, _ in video.captions} == {"en", "de"}
    assert any(c.type == "job_opening" for c in plan.content)
    assert any(c.submitted_by is not None for c in plan.content), "an advocate's own post"
    for item in plan.content:
        for network, _, text in item.captions:
            assert DISCLOSURE in text and post_length(network, text) <= POST_LIMITS[network]


def test_shares_stay_in_the_audience_and_keep_the_disclosure() -> None:
    plan = make_plan(11, 40, 14)
    by_key = {c.key: c for c in plan.content}
    for share in plan.shares:
        advocate = plan.advocates[share.advocate]
        assert by_key[share.content] in plan.visible(advocate)
        assert share.network in dict(advocate.networks)
        assert DISCLOSURE in share.message


def test_visits_come_in_every_kind_and_leads_come_days_after_the_visit_they_name() -> None:
    plan = make_plan(7, 50, 28)
    assert set(Counter(c.kind for c in plan.clicks)) == set(Visit)
    assert set(Counter(c.kind for c in plan.conversions)) == {"lead", "sale", "refund", "application", "hire"}
    by_key = {c.key: c for c in plan.content}
    first: dict[tuple[str, str], int] = {}  # (customer or order, type) -> day
    for conversion in plan.conversions:
        assert conversion.day < plan.days
        if conversion.click is not None:
            visit = plan.clicks[conversion.click]
            assert visit.kind is Visit.PERSON and conversion.day > visit.day
        if conversion.kind == "application":  # only through a job opening's link
            assert conversion.click is not None
            assert by_key[plan.shares[plan.clicks[conversion.click].share].content].type == "job_opening"
        if conversion.kind in ("refund", "hire"):  # they name no click: they follow what came first
            assert conversion.click is None
        first.setdefault((conversion.customer, conversion.kind), conversion.day)
        if conversion.kind == "sale":
            first.setdefault((conversion.order or "", "sale"), conversion.day)
            assert first[(conversion.customer, "lead")] < conversion.day
        if conversion.kind == "refund":
            assert first[(conversion.order or "", "sale")] < conversion.day
        if conversion.kind == "hire":
            assert first[(conversion.customer, "application")] < conversion.day
    for i, visit in enumerate(plan.clicks):
        if visit.kind is Visit.REPEAT:  # the same person came before, to the same share
            assert any(
                v.kind is Visit.PERSON and v.visitor == visit.visitor and v.share == visit.share
                for v in plan.clicks[:i]
            )


def test_kudos_stay_within_the_allowance_and_go_to_someone_else() -> None:
    plan = make_plan(5, 30, 21)
    given = Counter(k.giver for k in plan.kudos)
    assert plan.kudos and max(given.values()) <= kudos_allowance(21)
    assert all(k.giver != k.receiver for k in plan.kudos)
    assert len({a.advocate for a in plan.answers}) == len(plan.answers), "one survey answer each"

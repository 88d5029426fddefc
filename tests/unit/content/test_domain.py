"""The content rules without I/O: validation, the workflow by role, audience, settings, courses."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta

import pytest

from services.content.common import WEB_URL_PATTERN, Viewer
from services.content.library import domain
from services.content.library.domain import (
    Audience,
    ContentFields,
    ContentItem,
    Status,
    SuggestedPost,
)
from services.content.program import domain as program
from services.content.program.domain import OrgSettings
from services.content.training import domain as training
from services.content.training.domain import Module
from shared.errors import Conflict, Forbidden, InvalidInput
from shared.events.content import (
    ContentArchived,
    ContentPublished,
    ContentRejected,
    ContentSubmitted,
    ContentUpdated,
)
from shared.networks import NETWORKS, POST_LIMITS, post_length

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)
EDITOR = Viewer("ed", frozenset({"editor"}))
ADMIN = Viewer("boss", frozenset({"admin"}))
ADVOCATE = Viewer("ann", frozenset({"advocate"}), team="sales", department="emea", location="berlin")
OTHER_ADVOCATE = Viewer("bob", frozenset({"advocate"}), team="eng")


def fields(**changes: object) -> ContentFields:
    base = ContentFields(
        content_type="article",
        title="Our new plant",
        url="https://example.com/plant",
        summary="Opening in spring",
        tags=["News", "news", " plants "],
        language="en",
        suggested_posts=[SuggestedPost("linkedin", None, "Proud of our new plant #employee")],
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def item(status: Status, *, author: str | None = None, **changes: object) -> ContentItem:
    return ContentItem(
        "c1", "org", fields(**changes), status, author or "ed", NOW, NOW, author_advocate_id=author
    )


def problem_fields(exc: pytest.ExceptionInfo[InvalidInput]) -> list[str]:
    return [e["field"] for e in exc.value.errors]


# --- validation ---


@pytest.mark.parametrize("network", NETWORKS)
def test_a_caption_that_fits_with_the_shares_link_passes_and_one_character_more_is_refused(
    network: str,
) -> None:
    limit = POST_LIMITS[network]
    room = limit - post_length(network, "")  # what the link a share adds (and its space) leave
    domain.validate_fields(fields(suggested_posts=[SuggestedPost(network, "en", "a" * room)]), OrgSettings())
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(
            fields(suggested_posts=[SuggestedPost(network, "en", "a" * (room + 1))]), OrgSettings()
        )
    assert problem_fields(exc) == ["suggested_posts[0].text"]


def test_an_x_caption_at_280_without_room_for_the_link_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(suggested_posts=[SuggestedPost("x", "en", "a" * 280)]), OrgSettings())
    assert problem_fields(exc) == ["suggested_posts[0].text"]
    assert "304 characters with a share's link; x allows 280" in str(exc.value.errors)
    # The share's own check counts the same way: X shortens any link to 23.
    assert post_length("x", "a" * 256, len("https://go.example.com/r/abcdefghijk")) == 280


def test_x_captions_are_counted_by_xs_weights() -> None:
    # Japanese characters weigh 2 on X: 128 of them and the link fill a post; 129 do not,
    # though in code points they would be far from 280.
    japanese = "日" * 128
    domain.validate_fields(fields(suggested_posts=[SuggestedPost("x", "ja", japanese)]), OrgSettings())
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(
            fields(suggested_posts=[SuggestedPost("x", "ja", japanese + "日")]), OrgSettings()
        )
    assert problem_fields(exc) == ["suggested_posts[0].text"]
    assert "282 characters with a share's link; x allows 280" in str(exc.value.errors)
    # An emoji weighs 2, and a link inside the caption counts 23 however long it is.
    assert post_length("x", "😀") == 1 * 2 + 1 + 23
    assert post_length("x", "read https://example.com/a/very/long/path/indeed") == 5 + 23 + 1 + 23
    # The other networks count code points and the link as written.
    assert post_length("linkedin", "日" * 10, 30) == 10 + 1 + 30


def test_an_unknown_network_is_refused_naming_the_post() -> None:
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(suggested_posts=[SuggestedPost("myspace", "en", "hi")]), OrgSettings())
    assert problem_fields(exc) == ["suggested_posts[0].network"]


NOT_WEB_URLS = [
    "ftp://example.com/a",
    "javascript:alert(1)",
    "example.com",
    "https://",
    "http://a b",
    "https://a[b/x",  # a bracket that opens no IPv6 address: urlsplit raises on it
    "https://a]b/x",
]


@pytest.mark.parametrize("url", NOT_WEB_URLS)
def test_urls_must_be_http_or_https_with_a_host(url: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(url=url), OrgSettings())
    assert problem_fields(exc) == ["url"]
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(image_url=url), OrgSettings())
    assert problem_fields(exc) == ["image_url"]


@pytest.mark.parametrize("url", NOT_WEB_URLS)
def test_the_request_schemas_refuse_those_urls_first(url: str) -> None:
    assert re.match(WEB_URL_PATTERN, url) is None


def test_expiry_must_come_after_the_start() -> None:
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(starts_at=NOW, expires_at=NOW), OrgSettings())
    assert problem_fields(exc) == ["expires_at"]
    domain.validate_fields(fields(starts_at=NOW, expires_at=NOW + timedelta(seconds=1)), OrgSettings())


def test_every_suggested_post_must_keep_the_required_disclosure() -> None:
    settings = OrgSettings(required_disclosure="#employee")
    posts = [SuggestedPost("x", "en", "Look #Employee"), SuggestedPost("x", "en", "Look at this")]
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(fields(suggested_posts=posts), settings)
    assert problem_fields(exc) == ["suggested_posts[1].text"]


def test_blocked_words_are_matched_as_whole_words_ignoring_case() -> None:
    settings = OrgSettings(blocked_words=["guaranteed", "get rich"])
    domain.validate_fields(fields(title="Guaranteeds are not words"), settings)
    with pytest.raises(InvalidInput) as exc:
        domain.validate_fields(
            fields(
                title="GUARANTEED returns",
                summary="how to get rich",
                suggested_posts=[SuggestedPost("x", "en", "Guaranteed!")],
            ),
            settings,
        )
    assert problem_fields(exc) == ["title", "summary", "suggested_posts[0].text"]


def test_normalising_trims_and_deduplicates_tags_and_defaults_caption_language() -> None:
    clean = domain.normalise_fields(fields(language="de"))
    assert clean.tags == ["news", "plants"]
    assert clean.suggested_posts[0].language == "de"
    assert clean.networks == ["linkedin"]


# --- the workflow by role ---


def test_an_editor_creates_a_draft_without_an_event() -> None:
    created, events = domain.create_item(
        item_id="c1", org="o", fields=fields(), by=EDITOR, settings=OrgSettings(), now=NOW, request_key=None
    )
    assert created.status == Status.DRAFT and created.author_advocate_id is None
    assert events == []


def test_an_advocate_submits_for_review_with_a_submitted_event() -> None:
    created, events = domain.create_item(
        item_id="c1", org="o", fields=fields(), by=ADVOCATE, settings=OrgSettings(), now=NOW, request_key=None
    )
    assert created.status == Status.PENDING_REVIEW and created.author_advocate_id == "ann"
    assert isinstance(events[0], ContentSubmitted) and events[0].author_advocate_id == "ann"
    assert events[0].networks == ["linkedin"]


def test_create_refuses_invalid_fields() -> None:
    with pytest.raises(InvalidInput):
        domain.create_item(
            item_id="c1",
            org="o",
            fields=fields(url="ftp://x"),
            by=EDITOR,
            settings=OrgSettings(),
            now=NOW,
            request_key=None,
        )


@pytest.mark.parametrize("by", [EDITOR, ADMIN])
@pytest.mark.parametrize("status", [Status.DRAFT, Status.PENDING_REVIEW])
def test_editors_and_admins_publish_drafts_and_submissions(by: Viewer, status: Status) -> None:
    published, events = domain.publish_item(item(status), by=by, now=NOW)
    assert published.status == Status.PUBLISHED and published.published_by == by.sub
    assert isinstance(events[0], ContentPublished) and events[0].published_by == by.sub


def test_an_advocate_cannot_publish_even_their_own_submission() -> None:
    with pytest.raises(Forbidden):
        domain.publish_item(item(Status.PENDING_REVIEW, author="ann"), by=ADVOCATE, now=NOW)


@pytest.mark.parametrize("status", [Status.PUBLISHED, Status.REJECTED, Status.ARCHIVED])
def test_publishing_from_other_states_is_a_conflict(status: Status) -> None:
    with pytest.raises(Conflict):
        domain.publish_item(item(status), by=EDITOR, now=NOW)


def test_publishing_what_has_already_expired_is_refused() -> None:
    with pytest.raises(InvalidInput) as exc:
        domain.publish_item(item(Status.DRAFT, expires_at=NOW), by=EDITOR, now=NOW)
    assert problem_fields(exc) == ["expires_at"]


def test_an_editor_rejects_a_submission_with_a_reason() -> None:
    rejected, events = domain.reject_item(
        item(Status.PENDING_REVIEW, author="ann"), by=EDITOR, reason=" off topic ", now=NOW
    )
    assert rejected.status == Status.REJECTED and rejected.rejection_reason == "off topic"
    assert events == [ContentRejected(content_id="c1", reason="off topic", author_advocate_id="ann")]


def test_rejection_needs_a_reason_an_editor_and_a_pending_submission() -> None:
    with pytest.raises(InvalidInput):
        domain.reject_item(item(Status.PENDING_REVIEW), by=EDITOR, reason="  ", now=NOW)
    with pytest.raises(Forbidden):
        domain.reject_item(item(Status.PENDING_REVIEW), by=ADVOCATE, reason="no", now=NOW)
    for status in (Status.DRAFT, Status.PUBLISHED, Status.REJECTED, Status.ARCHIVED):
        with pytest.raises(Conflict):
            domain.reject_item(item(status), by=EDITOR, reason="no", now=NOW)


@pytest.mark.parametrize("status", [Status.DRAFT, Status.PENDING_REVIEW, Status.PUBLISHED, Status.REJECTED])
def test_editors_archive_anything_not_archived(status: Status) -> None:
    archived, events = domain.archive_item(item(status), by=EDITOR, reason="manual", now=NOW)
    assert archived.status == Status.ARCHIVED and archived.archive_reason == "manual"
    assert events == [ContentArchived(content_id="c1", reason="manual")]


def test_an_advocate_archives_only_their_own_item() -> None:
    domain.archive_item(item(Status.PENDING_REVIEW, author="ann"), by=ADVOCATE, reason="manual", now=NOW)
    with pytest.raises(Forbidden):
        domain.archive_item(item(Status.PUBLISHED), by=ADVOCATE, reason="manual", now=NOW)
    with pytest.raises(Conflict):
        domain.archive_item(item(Status.ARCHIVED), by=EDITOR, reason="manual", now=NOW)


def test_editing_a_published_item_emits_updated_and_a_draft_emits_nothing() -> None:
    _, events = domain.edit_item(
        item(Status.PUBLISHED), fields=fields(title="New"), by=EDITOR, settings=OrgSettings(), now=NOW
    )
    assert (
        isinstance(events[0], ContentUpdated) and events[0].status == "published" and events[0].title == "New"
    )
    _, events = domain.edit_item(
        item(Status.DRAFT), fields=fields(title="New"), by=EDITOR, settings=OrgSettings(), now=NOW
    )
    assert events == []


def test_an_advocate_edits_their_rejected_submission_which_is_submitted_again() -> None:
    rejected = dataclasses.replace(item(Status.REJECTED, author="ann"), rejection_reason="typo")
    edited, events = domain.edit_item(
        rejected, fields=fields(title="Fixed"), by=ADVOCATE, settings=OrgSettings(), now=NOW
    )
    assert edited.status == Status.PENDING_REVIEW and edited.rejection_reason is None
    assert isinstance(events[0], ContentSubmitted)


def test_an_advocate_cannot_edit_others_or_published_items_and_nobody_edits_archived() -> None:
    with pytest.raises(Forbidden):
        domain.edit_item(
            item(Status.PENDING_REVIEW, author="bob"),
            fields=fields(),
            by=ADVOCATE,
            settings=OrgSettings(),
            now=NOW,
        )
    with pytest.raises(Forbidden):
        domain.edit_item(
            item(Status.PUBLISHED, author="ann"),
            fields=fields(),
            by=ADVOCATE,
            settings=OrgSettings(),
            now=NOW,
        )
    with pytest.raises(Conflict):
        domain.edit_item(item(Status.ARCHIVED), fields=fields(), by=EDITOR, settings=OrgSettings(), now=NOW)


def test_the_sweeper_archives_as_expired() -> None:
    archived, events = domain.archive_item(item(Status.PUBLISHED), by=None, reason="expired", now=NOW)
    assert archived.archive_reason == "expired" and events == [
        ContentArchived(content_id="c1", reason="expired")
    ]


# --- audience ---


def test_audience_empty_means_everyone_and_each_listed_dimension_must_match() -> None:
    assert domain.audience_matches(Audience(), OTHER_ADVOCATE)
    assert domain.audience_matches(Audience(teams=["sales", "eng"]), OTHER_ADVOCATE)
    assert not domain.audience_matches(Audience(teams=["sales"]), OTHER_ADVOCATE)
    assert domain.audience_matches(Audience(teams=["sales"], locations=["berlin"]), ADVOCATE)
    assert not domain.audience_matches(Audience(teams=["sales"], locations=["paris"]), ADVOCATE)
    assert not domain.audience_matches(Audience(departments=["emea"]), OTHER_ADVOCATE)  # no claim: outside


def test_advocates_see_live_published_items_of_their_audience_and_their_own() -> None:
    for_sales = item(Status.PUBLISHED, audience=Audience(teams=["sales"]))
    assert domain.visible_to(for_sales, ADVOCATE, NOW)
    assert not domain.visible_to(for_sales, OTHER_ADVOCATE, NOW)
    assert domain.visible_to(for_sales, EDITOR, NOW)
    assert not domain.visible_to(item(Status.DRAFT), ADVOCATE, NOW)
    assert domain.visible_to(item(Status.REJECTED, author="ann"), ADVOCATE, NOW)
    assert not domain.visible_to(item(Status.PUBLISHED, starts_at=NOW + timedelta(hours=1)), ADVOCATE, NOW)
    assert not domain.visible_to(item(Status.PUBLISHED, expires_at=NOW), ADVOCATE, NOW)


def test_audience_attributes_come_from_string_claims_only() -> None:
    viewer = Viewer.from_claims(
        "s", frozenset({"advocate"}), {"team": "sales", "department": 3, "location": ""}
    )
    assert (viewer.team, viewer.department, viewer.location) == ("sales", None, None)


# --- settings, policy, courses ---


def test_settings_are_normalised_and_validated() -> None:
    saved = program.validate_settings(
        OrgSettings(required_disclosure=" #ad ", blocked_words=["Spam"], required_course_ids=["c1"]), {"c1"}
    )
    assert saved.required_disclosure == "#ad" and saved.blocked_words == ["spam"]
    bad = OrgSettings(
        blocked_words=["a", "A"],
        required_course_ids=["nope"],
        sharing_hours_start=10,
        sharing_hours_end=9,
        fallback_url="ftp://x",
    )
    with pytest.raises(InvalidInput) as exc:
        program.validate_settings(bad, set())
    assert problem_fields(exc) == [
        "blocked_words",
        "required_course_ids[0]",
        "sharing_hours_end",
        "fallback_url",
    ]


def test_settings_event_carries_every_setting() -> None:
    event = program.settings_event("org", OrgSettings(required_disclosure="#ad", daily_share_limit=3))
    assert event.org_id == "org" and event.required_disclosure == "#ad" and event.daily_share_limit == 3


def test_only_the_current_policy_version_can_be_acknowledged() -> None:
    training.check_acknowledgement(2, 2)
    with pytest.raises(Conflict):
        training.check_acknowledgement(1, 2)
    with pytest.raises(Conflict):
        training.check_acknowledgement(1, None)


def test_modules_need_a_body_or_a_web_url_and_unique_ids() -> None:
    training.validate_course(
        "Basics", [Module("a", "Intro", body="text"), Module("b", "Video", url="https://v.example")]
    )
    with pytest.raises(InvalidInput) as exc:
        training.validate_course("Basics", [Module("a", "x"), Module("a", "y", url="file:///etc/passwd")])
    assert problem_fields(exc) == ["modules[0].body", "modules[1].id", "modules[1].url"]


def test_policy_and_course_text_must_not_be_blank() -> None:
    with pytest.raises(InvalidInput) as exc:
        training.validate_policy(" \t", "\n ")
    assert problem_fields(exc) == ["title", "body"]
    with pytest.raises(InvalidInput) as exc:
        training.validate_course("  ", [Module("a", "Intro", body="x"), Module("b", " ", body="y")])
    assert problem_fields(exc) == ["title", "modules[1].title"]


def test_a_course_is_complete_when_every_module_is_done() -> None:
    assert not training.course_is_complete(["a", "b"], ["a"])
    assert training.course_is_complete(["a", "b"], ["b", "a", "old"])

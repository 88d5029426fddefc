"""Shares' rules: governance (what may be shared, by whom, when and how), scheduling, the daily
limit, and the tracked link a share gets."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from services.sharing.advocates.domain import AdvocateView, TrainingView
from services.sharing.catalog.domain import ContentView, OrgRules
from shared.clock import local_date, time_zone
from shared.errors import AppError, Forbidden, InvalidInput
from shared.events.shares import ShareMade
from shared.networks import NETWORKS, POST_LIMITS, post_length
from shared.wording import blocked_words_in, keeps_disclosure


@dataclass(frozen=True)
class Share:
    id: str  # time-ordered: the list's cursor order
    org: str
    advocate_id: str
    content_id: str
    network: str
    message: str
    code: str
    short_url: str
    target_url: str
    status: str  # pending (scheduled, not yet out), sent, or cancelled (its advocate left)
    send_at: datetime | None  # when a pending share goes out
    scheduled_at: datetime | None
    shared_at: datetime | None
    created_at: datetime
    event_id: str  # of its chorus.share.made: stable, so a re-sent event dedupes
    trace: dict[str, str]  # the context it was made in: clicks on it continue this trace
    audience_size: int = 0
    team: str | None = None
    department: str | None = None
    tags: tuple[str, ...] = ()
    content_type: str | None = None  # at share time; shares made before it was kept lack it
    request_key: str | None = None  # its create's Idempotency-Key (shared.ids.made_before)
    # The day it counts on for the daily limit, kept so that a cancellation gives back that
    # day's slot even after the zone changed; shares made before it was kept lack it.
    limit_day: str | None = None


# --- Governance ------------------------------------------------------------------------------


class ShareLimitReached(AppError):
    status = 429
    title = "Daily share limit reached"
    type_slug = "share-limit-reached"


class NotShareable(AppError):
    status = 409
    title = "Content not shareable"
    type_slug = "not-shareable"


def content_open_at(content: ContentView, at: datetime) -> str | None:
    """Why the content cannot be shared at `at`, or None when it can."""
    if content.status == "archived":
        return "the content is archived"
    if content.status != "published":
        return f"the content is not published (status {content.status})"
    if content.starts_at is not None and at < content.starts_at:
        return f"the content can be shared from {content.starts_at.isoformat()}"
    if content.expires_at is not None and at >= content.expires_at:
        return "the content has expired"
    return None


def audience_refusal(content: ContentView, advocate: AdvocateView) -> str | None:
    checks = (
        ("team", content.teams, advocate.team),
        ("department", content.departments, advocate.department),
        ("location", content.locations, advocate.location),
    )
    for name, allowed, value in checks:
        if allowed and value not in allowed:
            return (
                f"this content is for the {name}s {', '.join(allowed)}; your profile says {value or 'none'}"
            )
    return None


def gate_refusal(rules: OrgRules, training: TrainingView) -> str | None:
    if rules.require_policy_acknowledgement:
        acknowledged = training.acknowledged_policy_version
        if acknowledged is None:
            return "acknowledge the social media policy before sharing"
        if rules.policy_version is not None and acknowledged < rules.policy_version:
            return f"acknowledge version {rules.policy_version} of the social media policy before sharing"
    missing = [c for c in rules.required_course_ids if c not in training.completed_course_ids]
    if missing:
        return f"complete the required courses before sharing: {', '.join(missing)}"
    return None


def may_share(
    content: ContentView, advocate: AdvocateView, rules: OrgRules, training: TrainingView, at: datetime
) -> bool:
    """For the shareable list: every rule that does not depend on the message."""
    return (
        content_open_at(content, at) is None
        and audience_refusal(content, advocate) is None
        and gate_refusal(rules, training) is None
    )


def within_sharing_hours(rules: OrgRules, at: datetime) -> bool:
    """Whether `at` is within the sharing hours, read on the clock of the organisation's zone."""
    start = rules.sharing_hours_start if rules.sharing_hours_start is not None else 0
    end = rules.sharing_hours_end if rules.sharing_hours_end is not None else 24
    hour = at.astimezone(time_zone(rules.time_zone)).hour
    if start <= end:
        return start <= hour < end
    return hour >= start or hour < end  # a window across midnight, e.g. 22 to 6


def check_share(
    *,
    content: ContentView,
    advocate: AdvocateView,
    rules: OrgRules,
    training: TrainingView,
    network: str,
    message: str,
    short_url_length: int,
    goes_out_at: datetime,
) -> None:
    """Every governance rule that needs no counting; raises the refusal with its reason."""
    if not advocate.active:
        raise Forbidden(
            "your account was deactivated by your organisation's directory: you can no longer share"
        )
    if network not in POST_LIMITS:
        raise InvalidInput.field("network", f"must be one of {', '.join(sorted(NETWORKS))}")
    if (reason := content_open_at(content, goes_out_at)) is not None:
        raise NotShareable(reason)
    if (reason := audience_refusal(content, advocate)) is not None:
        raise Forbidden(reason)
    if (reason := gate_refusal(rules, training)) is not None:
        raise Forbidden(reason)
    if not keeps_disclosure(message, rules.required_disclosure):
        raise InvalidInput.field(
            "message", f"must keep the required disclosure {rules.required_disclosure!r}"
        )
    if blocked := blocked_words_in(message, rules.blocked_words):
        raise InvalidInput.field("message", f"contains blocked words: {', '.join(blocked)}")
    limit = POST_LIMITS[network]
    length = post_length(network, message, short_url_length)
    if length > limit:
        raise InvalidInput.field("message", f"is {length} characters with the link; {network} allows {limit}")
    if not within_sharing_hours(rules, goes_out_at):
        start = rules.sharing_hours_start or 0
        end = rules.sharing_hours_end or 24
        raise Forbidden(f"sharing is open from {start}:00 to {end}:00 ({rules.time_zone})")


def goes_out_at(scheduled_at: datetime | None, now: datetime, max_schedule_days: int) -> datetime:
    """When a share goes out: now, or the time it is scheduled for, which must be a future time
    (with its zone) within `max_schedule_days`."""
    if scheduled_at is None:
        return now
    if scheduled_at.tzinfo is None:
        raise InvalidInput.field("scheduled_at", "must carry a time zone, e.g. 2026-05-01T09:00:00Z")
    if scheduled_at <= now:
        raise InvalidInput.field("scheduled_at", "must be in the future; omit it to share now")
    if scheduled_at > now + timedelta(days=max_schedule_days):
        raise InvalidInput.field("scheduled_at", f"must be within {max_schedule_days} days")
    return scheduled_at.astimezone(UTC)


def check_daily_limit_open(rules: OrgRules) -> None:
    if rules.daily_share_limit is not None and rules.daily_share_limit <= 0:
        raise ShareLimitReached("sharing is switched off for this organisation (daily limit 0)")


def share_day(rules: OrgRules, goes_out: datetime) -> str:
    """The day a share counts on for the daily limit: its day in the organisation's zone."""
    return local_date(goes_out, rules.time_zone).isoformat()


def daily_limit_reached(rules: OrgRules, day: str) -> ShareLimitReached:
    return ShareLimitReached(
        f"you have reached the daily limit of {rules.daily_share_limit} shares for {day}"
    )


# --- The share and its link ------------------------------------------------------------------

CODE_BYTES = 8  # 64 bits: unguessable, 11 characters


def new_share_code() -> str:
    return secrets.token_urlsafe(CODE_BYTES)


def new_share_id(now: datetime) -> str:
    """Time-ordered (for cursor pagination) and unguessable."""
    return f"{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"


def short_url(public_base_url: str, code: str) -> str:
    return f"{public_base_url.rstrip('/')}/r/{code}"


def target_url(content_url: str, *, network: str, campaign: str, share_id: str) -> str:
    """The content URL with our UTM parameters (replacing any UTM it had); its fragment kept."""
    parts = urlsplit(content_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
    query += [
        ("utm_source", network),
        ("utm_medium", "employee_advocacy"),
        ("utm_campaign", campaign),
        ("utm_content", share_id),
    ]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def campaign_name(title: str, content_id: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60]
    return slug or content_id


def new_share(
    *,
    org: str,
    advocate: AdvocateView,
    content: ContentView,
    network: str,
    message: str,
    code: str,
    short: str,
    scheduled: bool,
    goes_out: datetime,
    now: datetime,
    trace: dict[str, str],
    request_key: str | None,
    limit_day: str,
) -> Share:
    """An immediate share is sent now (its chorus.share.made goes with it); a scheduled one
    waits, pending, for the due-share job."""
    share_id = new_share_id(now)
    return Share(
        id=share_id,
        org=org,
        advocate_id=advocate.advocate_id,
        content_id=content.content_id,
        network=network,
        message=message,
        code=code,
        short_url=short,
        target_url=target_url(
            content.url,
            network=network,
            campaign=campaign_name(content.title, content.content_id),
            share_id=share_id,
        ),
        status="pending" if scheduled else "sent",
        send_at=goes_out if scheduled else None,
        scheduled_at=goes_out if scheduled else None,
        shared_at=None if scheduled else now,
        created_at=now,
        event_id=str(uuid.uuid4()),
        trace=trace,
        audience_size=advocate.audience_by_network.get(network, 0),
        team=advocate.team,
        department=advocate.department,
        tags=content.tags,
        content_type=content.content_type,
        request_key=request_key,
        limit_day=limit_day,
    )


def share_made(share: Share, shared_at: datetime) -> ShareMade:
    return ShareMade(
        share_id=share.id,
        advocate_id=share.advocate_id,
        content_id=share.content_id,
        network=share.network,
        code=share.code,
        short_url=share.short_url,
        target_url=share.target_url,
        audience_size=share.audience_size,
        team=share.team,
        department=share.department,
        tags=list(share.tags),
        shared_at=shared_at,
        content_type=share.content_type,
    )

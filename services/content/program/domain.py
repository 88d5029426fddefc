"""Pure rules of the organisation's program settings. No I/O."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from services.content.common import Problems, is_web_url, raise_if
from shared.clock import DEFAULT_TIME_ZONE, time_zone
from shared.events.content import SettingsUpdated
from shared.wording import blocked_words_in


@dataclass(frozen=True)
class OrgSettings:
    """The organisation's program settings (the defaults apply until an admin saves them)."""

    required_disclosure: str | None = None
    blocked_words: list[str] = field(default_factory=list)
    require_policy_acknowledgement: bool = False
    required_course_ids: list[str] = field(default_factory=list)
    daily_share_limit: int | None = None
    sharing_hours_start: int | None = None
    sharing_hours_end: int | None = None
    fallback_url: str | None = None
    unique_click_window_hours: int = 24
    attribution_window_days: int = 30
    time_zone: str = DEFAULT_TIME_ZONE  # IANA; sharing hours and every day of the figures follow it
    # Colleagues see an advocate's name and picture unless the advocate chose otherwise (issue 16).
    names_visible_by_default: bool = False
    # An advocate the directory (SCIM) deactivates or deletes is erased at once (issue 16).
    erase_leavers: bool = False


def validate_settings(settings: OrgSettings, known_course_ids: set[str]) -> OrgSettings:
    problems: Problems = []
    disclosure = settings.required_disclosure.strip() if settings.required_disclosure else None
    words = list(dict.fromkeys(w.strip().lower() for w in settings.blocked_words if w.strip()))
    if len(words) != len(settings.blocked_words):
        problems.append({"field": "blocked_words", "message": "must not contain empty or duplicate entries"})
    if disclosure and (blocked := blocked_words_in(disclosure, words)):
        problems.append(
            {"field": "required_disclosure", "message": f"contains the blocked word {blocked[0]!r}"}
        )
    for i, course_id in enumerate(settings.required_course_ids):
        if course_id not in known_course_ids:
            problems.append({"field": f"required_course_ids[{i}]", "message": f"no course {course_id!r}"})
    start, end = settings.sharing_hours_start, settings.sharing_hours_end
    if (start is None) != (end is None):
        problems.append({"field": "sharing_hours_end", "message": "set both sharing hours or neither"})
    elif start is not None and end is not None and end <= start:
        problems.append({"field": "sharing_hours_end", "message": "must be after sharing_hours_start"})
    if settings.fallback_url is not None and not is_web_url(settings.fallback_url):
        problems.append({"field": "fallback_url", "message": "must be an http or https URL"})
    try:
        time_zone(settings.time_zone)
    except ValueError as e:
        problems.append({"field": "time_zone", "message": str(e)})
    raise_if(problems)
    return dataclasses.replace(
        settings,
        required_disclosure=disclosure or None,
        blocked_words=words,
        required_course_ids=list(dict.fromkeys(settings.required_course_ids)),
    )


def settings_event(org: str, settings: OrgSettings) -> SettingsUpdated:
    return SettingsUpdated(org_id=org, **dataclasses.asdict(settings))

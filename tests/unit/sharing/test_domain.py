"""Sharing's pure rules: governance, links, click classification, visitor hashing."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from crawleruseragents import CRAWLER_USER_AGENTS_DATA

from services.sharing.advocates.domain import AdvocateView, TrainingView
from services.sharing.catalog.domain import ContentView, OrgRules
from services.sharing.redirect import cookie
from services.sharing.redirect import domain as clicks
from services.sharing.shares import domain
from shared.errors import AppError, Forbidden, InvalidInput
from shared.events.clicks import CLICK_ID_PATTERN
from tests.helpers import tampered

NOW = datetime(2026, 5, 4, 10, 30, tzinfo=UTC)
CONTENT = ContentView(content_id="c1", status="published", url="https://example.com/a")
ADVOCATE = AdvocateView(advocate_id="a1", team="sales", department="revenue", location="paris")


def check(
    *,
    content: ContentView = CONTENT,
    rules: OrgRules | None = None,
    training: TrainingView | None = None,
    network: str = "linkedin",
    message: str = "hello",
    at: datetime = NOW,
) -> None:
    domain.check_share(
        content=content,
        advocate=ADVOCATE,
        rules=rules or OrgRules(),
        training=training or TrainingView(),
        network=network,
        message=message,
        short_url_length=30,
        goes_out_at=at,
    )


def test_a_plain_share_passes_every_rule() -> None:
    check()


@pytest.mark.parametrize(
    ("kwargs", "error", "reason"),
    [
        ({"content": ContentView("c1", "archived", "https://e.com")}, AppError, "archived"),
        ({"content": ContentView("c1", "published", "https://e.com", expires_at=NOW)}, AppError, "expired"),
        (
            {"content": ContentView("c1", "published", "https://e.com", starts_at=NOW + timedelta(hours=1))},
            AppError,
            "from",
        ),
        ({"content": ContentView("c1", "published", "https://e.com", teams=("eng",))}, Forbidden, "team"),
        (
            {"content": ContentView("c1", "published", "https://e.com", locations=("nyc",))},
            Forbidden,
            "location",
        ),
        ({"rules": OrgRules(require_policy_acknowledgement=True)}, Forbidden, "policy"),
        (
            {
                "rules": OrgRules(require_policy_acknowledgement=True, policy_version=3),
                "training": TrainingView(acknowledged_policy_version=2),
            },
            Forbidden,
            "version 3",
        ),
        ({"rules": OrgRules(required_course_ids=("c101",))}, Forbidden, "c101"),
        ({"rules": OrgRules(required_disclosure="#ad")}, InvalidInput, "disclosure"),
        ({"rules": OrgRules(blocked_words=("free",)), "message": "It's FREE!"}, InvalidInput, "free"),
        ({"network": "x", "message": "m" * 257}, InvalidInput, "280"),
        ({"network": "friendster"}, InvalidInput, "network"),
        ({"rules": OrgRules(sharing_hours_start=12, sharing_hours_end=18)}, Forbidden, "12:00 to 18:00"),
    ],
)
def test_each_governance_rule_refuses_with_its_reason(
    kwargs: dict[str, object], error: type[AppError], reason: str
) -> None:
    with pytest.raises(error) as refused:
        check(**kwargs)  # type: ignore[arg-type]
    assert reason.lower() in refused.value.detail.lower()


def test_the_gate_opens_with_the_current_policy_and_the_courses() -> None:
    rules = OrgRules(require_policy_acknowledgement=True, policy_version=2, required_course_ids=("c101",))
    check(rules=rules, training=TrainingView(frozenset({"c101"}), acknowledged_policy_version=2))


def test_the_disclosure_is_found_in_any_case_and_blocked_words_only_as_words() -> None:
    check(rules=OrgRules(required_disclosure="#Employee"), message="Proud #employee")
    check(rules=OrgRules(blocked_words=("free",)), message="Freedom of speech")


def test_x_counts_a_link_as_23_characters() -> None:
    check(network="x", message="m" * 256)


def test_sharing_hours_may_span_midnight() -> None:
    night = OrgRules(sharing_hours_start=22, sharing_hours_end=6)
    assert domain.within_sharing_hours(night, NOW.replace(hour=23))
    assert domain.within_sharing_hours(night, NOW.replace(hour=5))
    assert not domain.within_sharing_hours(night, NOW.replace(hour=12))


def test_the_target_keeps_the_content_url_and_replaces_its_utm_parameters() -> None:
    url = domain.target_url(
        "https://shop.example.com/p?id=7&utm_source=old#reviews",
        network="x",
        campaign="spring",
        share_id="s1",
    )
    parts = urlsplit(url)
    assert parts.fragment == "reviews"
    assert parse_qs(parts.query) == {
        "id": ["7"],
        "utm_source": ["x"],
        "utm_medium": ["employee_advocacy"],
        "utm_campaign": ["spring"],
        "utm_content": ["s1"],
    }


def test_the_click_id_goes_before_the_fragment() -> None:
    prefix, suffix = clicks.split_for_click_id("https://e.com/a?x=1#top", "cid")
    assert prefix + "K1" + suffix == "https://e.com/a?x=1&cid=K1#top"
    prefix, suffix = clicks.split_for_click_id("https://e.com/a", "cid")
    assert prefix + "K1" + suffix == "https://e.com/a?cid=K1"


def test_codes_are_long_random_and_url_safe() -> None:
    codes = {domain.new_share_code() for _ in range(1000)}
    assert len(codes) == 1000
    assert all(clicks.CODE_PATTERN.fullmatch(c) and len(c) == 11 for c in codes)


@pytest.mark.parametrize(
    "user_agent",
    [
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Slack-ImgProxy (+https://api.slack.com/robots)",
        "Twitterbot/1.0",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "WhatsApp/2.23.20.0",
        "TelegramBot (like TwitterBot)",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0",
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.32.3",
        "",
    ],
)
def test_crawlers_preview_fetchers_and_scripts_are_bots(user_agent: str) -> None:
    assert clicks.is_bot(user_agent)


def test_every_example_of_the_maintained_crawler_list_is_a_bot() -> None:
    examples = [ua for entry in CRAWLER_USER_AGENTS_DATA for ua in entry.get("instances", [])]
    assert len(examples) > 1000
    assert [ua for ua in examples if not clicks.is_bot(ua)] == []


@pytest.mark.parametrize(
    ("user_agent", "device", "browser"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/131.0 Safari/537.36",
            "desktop",
            "chrome",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "mobile",
            "safari",
        ),
        (
            "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
            "Version/17.5 Mobile/15E148 Safari/604.1",
            "tablet",
            "safari",
        ),
        (
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.5; rv:127.0) Gecko/20100101 Firefox/127.0",
            "desktop",
            "firefox",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 "
            "Safari/537.36 Edg/131.0",
            "desktop",
            "edge",
        ),
    ],
)
def test_browsers_are_people_with_a_device_and_browser_class(
    user_agent: str, device: str, browser: str
) -> None:
    assert not clicks.is_bot(user_agent)
    assert (clicks.device_class(user_agent), clicks.browser_class(user_agent)) == (device, browser)


def test_the_visitor_hash_hides_the_ip_and_changes_with_the_day() -> None:
    hasher = clicks.VisitorHasher("secret")
    today = hasher.visitor_hash("203.0.113.7", "UA", NOW)
    assert today == hasher.visitor_hash("203.0.113.7", "UA", NOW + timedelta(hours=1))
    assert today != hasher.visitor_hash("203.0.113.8", "UA", NOW)
    assert today != hasher.visitor_hash("203.0.113.7", "UA", NOW + timedelta(days=1))
    assert today != clicks.VisitorHasher("other").visitor_hash("203.0.113.7", "UA", NOW)
    assert "203" not in today


def test_a_click_is_a_first_visit_when_none_was_seen_inside_the_window() -> None:
    first = clicks.Seen(1000.0, "k1")
    assert clicks.first_visit(None, "k1", 1000.0, 3600)
    assert not clicks.first_visit(first, "k2", 1000.0 + 3599, 3600)
    assert clicks.first_visit(first, "k3", 1000.0 + 3600, 3600)  # the window has ended
    assert clicks.first_visit(first, "k1", 1000.0, 3600)  # the first click, sent again


def test_a_visitor_is_known_by_the_same_key_all_window_long_and_by_another_in_each_org() -> None:
    hasher = clicks.VisitorHasher("secret")
    key = hasher.seen_key("org-a", "203.0.113.7", "Firefox")
    assert key == clicks.VisitorHasher("secret").seen_key("org-a", "203.0.113.7", "Firefox")  # no daily salt
    assert key != hasher.seen_key("org-b", "203.0.113.7", "Firefox")
    assert key != clicks.VisitorHasher("other").seen_key("org-a", "203.0.113.7", "Firefox")
    assert "203.0.113.7" not in key and len(key) == 32
    day_one = hasher.visitor_hash("203.0.113.7", "Firefox", datetime(2026, 12, 5, 23, 59, tzinfo=UTC))
    day_two = hasher.visitor_hash("203.0.113.7", "Firefox", datetime(2026, 12, 6, 0, 1, tzinfo=UTC))
    assert day_one != day_two  # what the events carry still changes every day


def test_the_advocate_cookie_is_recognised_and_a_forged_one_is_not() -> None:
    value = cookie.sign_advocate("secret", "org-1", "auth0|123")
    assert cookie.verify_advocate_cookie("secret", value) == ("org-1", "auth0|123")
    assert cookie.verify_advocate_cookie("other", value) is None
    assert cookie.verify_advocate_cookie("secret", tampered(value)) is None
    mac = value.partition(".")[2]
    forged = cookie.sign_advocate("guess", "org-1", "boss").partition(".")[0] + "." + mac
    assert cookie.verify_advocate_cookie("secret", forged) is None


def test_referrer_and_country_are_coarse() -> None:
    assert clicks.referrer_host("https://www.linkedin.com/feed/update/123?x=1") == "www.linkedin.com"
    assert clicks.referrer_host("not a url") is None
    assert clicks.country_code(" fr ") == "FR"
    assert clicks.country_code("XX") is None
    assert clicks.country_code("France") is None


def test_a_referrer_or_country_header_that_is_not_one_is_unknown() -> None:
    # Headers are latin-1: a byte past ASCII reaches these functions as a character of its own.
    assert clicks.referrer_host("https://exa\x85mple.com/") is None  # C1's NEL
    assert clicks.referrer_host("https://a b.com/") is None
    assert clicks.referrer_host("https://xn--exmple-cua.com/") == "xn--exmple-cua.com"  # an IDN
    assert clicks.referrer_host("android-app://com.linkedin.android/") == "com.linkedin.android"
    assert clicks.referrer_host("https://[2001:db8::1]/") == "2001:db8::1"
    assert clicks.country_code("\xe9\xe9") is None  # isalpha() alone takes "ÉÉ"


def test_click_ids_have_the_shape_metrics_waits_for() -> None:
    # metrics waits for a click it has not indexed yet only when the id has this shape.
    ids = {clicks.new_click_id() for _ in range(200)}
    assert len(ids) == 200 and all(CLICK_ID_PATTERN.fullmatch(i) for i in ids)


def test_sharing_hours_are_read_on_the_clock_of_the_organisations_zone() -> None:
    office = OrgRules(sharing_hours_start=9, sharing_hours_end=18, time_zone="America/Los_Angeles")
    five_pm_in_california = datetime(2026, 5, 2, 0, 0, tzinfo=UTC)  # 17:00 PDT on 1 May
    assert domain.within_sharing_hours(office, five_pm_in_california)
    assert not domain.within_sharing_hours(office, five_pm_in_california + timedelta(hours=1))
    assert not domain.within_sharing_hours(
        dataclasses.replace(office, time_zone="UTC"), five_pm_in_california
    )
    # The daily limit counts on the organisation's day too.
    assert domain.share_day(office, five_pm_in_california) == "2026-05-01"
    assert domain.share_day(OrgRules(), five_pm_in_california) == "2026-05-02"


def test_the_redirect_limit_counts_each_client_in_its_minute() -> None:
    limit = clicks.ClientLimit(per_minute=2)
    start = 1_800_000_000.0  # a minute's first second
    assert [limit.wait_s("a", start + s) for s in (0, 1, 2)] == [0, 0, 58]
    assert limit.wait_s("b", start + 2) == 0  # each client has its own count
    assert limit.wait_s("a", start + 59.5) == 1  # never "retry in 0 s"
    assert limit.wait_s("a", start + 60) == 0  # a new minute starts afresh


def test_a_name_is_shown_by_the_advocates_choice_else_the_organisations_default() -> None:
    from services.sharing.advocates.domain import Profile, name_shown, profile_saved

    follows, shows, hides = (
        Profile("Fay"),
        Profile("Sam", name_visible=True),
        Profile("Hal", name_visible=False),
    )
    assert [name_shown(p, False) for p in (follows, shows, hides)] == [False, True, False]
    assert [name_shown(p, True) for p in (follows, shows, hides)] == [True, True, False]
    hidden = profile_saved(
        "hal", Profile("Hal", avatar_url="https://x.test/h.png"), enrolled=True, shown=False
    )
    assert (hidden.display_name, hidden.avatar_url) == (None, None)
    seen = profile_saved("hal", Profile("Hal", avatar_url="https://x.test/h.png"), enrolled=True, shown=True)
    assert (seen.display_name, seen.avatar_url) == ("Hal", "https://x.test/h.png")


def test_the_colleague_directory_lists_active_advocates_whose_name_is_shown() -> None:
    from services.sharing.advocates.domain import Profile, search_name

    assert search_name(Profile(" Ann Lee "), True) == "ann lee"
    assert search_name(Profile("Ann Lee"), False) is None
    assert search_name(Profile("Ann Lee", active=False), True) is None

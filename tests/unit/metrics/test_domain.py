"""Pure rules of the metrics service: deltas, folding under watermarks, derived figures,
attribution credit, goal forecasts, survey scores and CSV."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.metrics import web
from services.metrics.analytics import domain as analytics
from services.metrics.analytics.domain import Totals
from services.metrics.attribution import domain as attribution
from services.metrics.attribution.domain import Touch
from services.metrics.goals import domain as goals
from services.metrics.org_settings import domain as org_settings
from services.metrics.org_settings.domain import EmvRates
from services.metrics.projections import copies
from services.metrics.projections import domain as projections
from services.metrics.projections.domain import Click
from services.metrics.projections.zones import localized, slot_day
from services.metrics.settings import MetricsSettings
from services.metrics.surveys import domain as surveys
from services.metrics.webhooks.schemas import CloudEvent
from shared.clock import utc_slot
from shared.errors import InvalidInput
from shared.events import Event, EventData, personal
from shared.events.clicks import ClickRecorded
from shared.events.conversions import LeadCaptured, SaleRecorded
from shared.events.personal import new_person
from shared.events.shares import ShareMade
from shared.messaging import Batch, Delivered
from shared.messaging.batch import D
from tests.helpers import Pending, tally_of

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)  # a Monday


def click(**overrides: object) -> ClickRecorded:
    fields: dict[str, object] = {
        "click_id": "c1",
        "share_id": "s1",
        "advocate_id": "alice",
        "content_id": "k1",
        "network": "linkedin",
        "clicked_at": T0,
        "team": "sales",
        "tags": ["ai", "cloud"],
    }
    fields.update(overrides)
    return ClickRecorded.model_validate(fields)


def share(**overrides: object) -> ShareMade:
    fields: dict[str, object] = {
        "share_id": "s1",
        "advocate_id": "alice",
        "content_id": "k1",
        "network": "linkedin",
        "code": "x",
        "short_url": "http://s/x",
        "target_url": "http://t",
        "audience_size": 500,
        "team": "sales",
        "tags": ["ai", "cloud"],
        "shared_at": T0,
    }
    fields.update(overrides)
    return ShareMade.model_validate(fields)


def test_bot_and_self_clicks_are_counted_apart_from_headline_clicks() -> None:
    assert dict(projections.click_counters(click(bot=True, self=True))) == {"bot_clicks": 1}
    assert dict(projections.click_counters(click(self=True))) == {"self_clicks": 1}
    assert dict(projections.click_counters(click())) == {"clicks": 1, "unique_clicks": 1}
    assert dict(projections.click_counters(click(unique=False))) == {"clicks": 1}


def test_a_share_counts_once_in_every_dimension_and_each_tag() -> None:
    effect = projections.share_effect("org", share())
    assert sorted(effect.dims) == [
        ("advocate", "alice"),
        ("all", "*"),
        ("content", "k1"),
        ("network", "linkedin"),
        ("tag", "ai"),
        ("tag", "cloud"),
        ("team", "sales"),
    ]
    # Tallied by its UTC quarter hour; put on a day of the organisation's zone by `localized`.
    assert dict(effect.counters) == {"shares": 1, "reach": 500} and effect.day == "2026-11-02T10:00"


def test_an_erased_advocate_gets_no_advocate_document_and_still_counts_elsewhere() -> None:
    effect = projections.click_effect("org", click())
    erased = projections.without_advocates(effect, frozenset({"alice"}))
    assert {dim for dim, _ in erased.dims} == {"all", "content", "team", "network", "tag"}
    assert erased.counters == effect.counters
    assert projections.without_advocates(effect, frozenset({"bob"})) is effect


def test_a_tally_takes_erased_advocates_out_of_its_breakdowns_and_last_shares() -> None:
    tally = tally_of(
        [
            Pending(projections.click_effect("org", click()), "clicks_0", 1, "e1"),
            Pending(projections.click_effect("org", click(advocate_id="bob")), "clicks_0", 2, "e2"),
        ]
    )
    tally.last_share = {("org", "alice"): T0, ("org", "bob"): T0}
    assert tally.advocates() == {("org", "alice"), ("org", "bob")}
    tally.without_advocates({("org", "alice")})
    update = projections.fold(only_day(tally), "dims", {})
    assert update is not None and update.counters["advocate"] == {"bob": {"clicks": 1, "unique_clicks": 1}}
    assert update.counters["content"] == {"k1": {"clicks": 2, "unique_clicks": 2}}
    assert tally.last_share == {("org", "bob"): T0}


def test_an_event_counts_only_at_its_first_copy_however_far_apart() -> None:
    lead = projections.Effect("org", "2026-11-02", (("all", "*"),), (("leads", 1),))
    pending = [
        Pending(lead, "v_0", 7, "old"),  # a copy of an event first counted in an earlier poll
        Pending(lead, "v_0", 8, "new"),
        Pending(lead, "v_0", 9, "new"),  # a repeat within the poll
        Pending(lead, "v_0", 10, "again"),  # its first copy, delivered again
    ]
    tally = tally_of(pending)
    here = {("org", "old"): ("v_0", 7), ("org", "new"): ("v_0", 8), ("org", "again"): ("v_0", 10)}
    assert copies.counted(tally) == here
    copies.drop_copies(tally, {**here, ("org", "old"): ("v_0", 3)})
    update = projections.fold(only_day(tally), "all", {})
    assert update is not None and update.counters == {"all": {"*": {"leads": 2}}}
    assert update.offsets == {"v_0": (7, 10)}  # the copies still move the watermark


def test_unattributed_conversions_count_only_in_the_organisation_totals() -> None:
    lead = LeadCaptured(conversion_id="v", key="v", customer_id="c", attributed=False, converted_at=T0)
    effect = projections.conversion_effect("org", lead)
    assert (effect.dims, dict(effect.counters)) == ((("all", "*"),), {"leads": 1})
    sale = SaleRecorded(
        conversion_id="v",
        key="s1",
        customer_id="c",
        attributed=True,
        advocate_id="alice",
        content_id="k1",
        network="x",
        converted_at=T0,
        amount="12.345",
        currency="EUR",
    )
    effect = projections.conversion_effect("org", sale)
    assert {dim for dim, _ in effect.dims} == {"all", "advocate", "content", "network"}
    assert dict(effect.counters) == {"sales": 1, "revenue.EUR": 123450}


def only_day(tally: projections.Tally, zones: dict[str, str] | None = None) -> projections.DayTally:
    """The one day of a tally, on the days of `zones` (UTC by default)."""
    [day] = localized(tally, zones or {}).days.values()
    return day


def fold(
    pending: list[Pending], part: str, watermarks: dict[str, int], applied_ids: frozenset[str] | None = None
) -> projections.DocUpdate | None:
    return projections.fold(only_day(tally_of(pending)), part, watermarks, applied_ids)


def delivered(data: EventData, partition: int, offset: int, event_id: str | None = None) -> Delivered:
    event = Event.create(data, tenant="org", source="/test", event_id=event_id or f"p{partition}-{offset}")
    return Delivered(event, "chorus.clicks", partition, offset)


def test_a_batch_tally_has_one_effect_per_click_shape_and_the_records_of_each_partition() -> None:
    batch = Batch(
        "chorus.clicks",
        [
            delivered(click(click_id="c1"), 0, 10),
            delivered(click(click_id="c2", bot=True), 0, 11),
            delivered(click(click_id="c3"), 0, 12),
            delivered(click(click_id="c4"), 3, 5),
            delivered(click(click_id="c3"), 3, 6, event_id="p0-12"),  # the same event again
        ],
    )
    [day] = projections.tally_events(batch.topic, batch.items).days.values()
    assert (day.org, day.day) == ("org", "2026-11-02T10:00")  # its UTC quarter hour
    assert day.effects == [
        projections.click_effect("org", click()),
        projections.click_effect("org", click(bot=True)),
    ]
    assert day.counts == [3, 1]
    assert set(day.runs) == {"chorus_clicks_0", "chorus_clicks_3"}
    assert list(day.runs["chorus_clicks_3"].offsets) == [5, 6]
    update = projections.fold(day, "all", {})
    assert update is not None and update.counters == {
        "all": {"*": {"clicks": 3, "unique_clicks": 3, "bot_clicks": 1}}
    }
    assert update.offsets == {"chorus_clicks_0": (10, 12), "chorus_clicks_3": (5, 6)}
    # Redelivered after partition 0 applied offset 11: what lies above counts, once.
    again = projections.fold(day, "all", {"chorus_clicks_0": 11})
    assert again is not None and again.counters == {"all": {"*": {"clicks": 2, "unique_clicks": 2}}}


def test_clicks_are_tallied_by_their_utc_quarter_hour_whatever_offset_they_are_written_in() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    same_instant = T0.astimezone(india)  # 15:30 in India is 10:00 UTC
    same_wall_clock = T0.replace(tzinfo=india)  # 10:00 in India is 04:30 UTC
    items = [
        delivered(click(click_id="c1"), 0, 1),
        delivered(click(click_id="c2", clicked_at=same_instant), 0, 2),
        delivered(click(click_id="c3", clicked_at=same_wall_clock), 0, 3),
        delivered(click(click_id="c4", clicked_at=T0 + timedelta(minutes=14)), 0, 4),
    ]
    days = projections.tally_events("chorus.clicks", items).days.values()
    assert sorted((d.day, sum(d.counts)) for d in days) == [("2026-11-02T04:30", 1), ("2026-11-02T10:00", 3)]


def test_a_batch_tally_keeps_each_advocates_latest_share() -> None:
    later = T0.replace(hour=15)
    tally = projections.tally_events(
        "chorus.shares",
        [
            delivered(share(share_id="s1", shared_at=later), 0, 1),
            delivered(share(share_id="s2"), 0, 2),
            delivered(share(share_id="s3", advocate_id="bob"), 1, 1),
        ],
    )
    assert tally.last_share == {("org", "alice"): later, ("org", "bob"): T0}
    # Alice's two shares have the same effect: counted as one effect, twice.
    assert only_day(tally).counts == [2, 1]


def test_sealed_events_are_tallied_as_their_people_and_each_click_shape_revealed_once() -> None:
    alice = new_person("org", "alice")
    by_pseudonym = {alice.pseudonym: alice}
    revealed: list[str] = []

    def reveal(org: str, data: D) -> D:
        assert org == "org"
        revealed.append(type(data).__name__)
        return personal.reveal(data, by_pseudonym)

    def sealed(data: D) -> D:
        return personal.seal(data, {"alice": alice})

    clicks = projections.tally_events(
        "chorus.clicks",
        [
            delivered(sealed(click(click_id="c1")), 0, 1),
            delivered(sealed(click(click_id="c2")), 0, 2),
            delivered(click(click_id="c3"), 0, 3),  # from before sealing: the same effect
        ],
        reveal,
    )
    [day] = clicks.days.values()
    assert day.effects == [projections.click_effect("org", click())]
    assert day.counts == [3]
    assert revealed == ["ClickRecorded", "ClickRecorded"]  # one per shape of click, not per click
    shares = projections.tally_events("chorus.shares", [delivered(sealed(share()), 0, 1)], reveal)
    assert shares.last_share == {("org", "alice"): T0}
    assert revealed[2:] == ["ShareMade"]  # once
    [day] = shares.days.values()
    assert day.effects == [projections.share_effect("org", share())]


def test_fold_sums_only_what_lies_above_the_watermark_and_skips_applied_ids() -> None:
    effect = projections.Effect("org", "2026-11-02", (("all", "*"),), (("clicks", 1),))
    pending = [Pending(effect, "clicks_0", offset, f"e{offset}") for offset in (5, 6, 7, 8)]
    update = fold(pending, "all", {"clicks_0": 6})
    assert update is not None
    assert (update.counters, update.offsets) == ({"all": {"*": {"clicks": 2}}}, {"clicks_0": (7, 8)})
    assert fold(pending, "all", {"clicks_0": 8}) is None
    deduped = fold([*pending, Pending(effect, "clicks_0", 9, "e8")], "all", {}, applied_ids=frozenset({"e5"}))
    assert deduped is not None and deduped.counters == {"all": {"*": {"clicks": 3}}}
    assert deduped.event_ids == ["e6", "e7", "e8"]
    # The repeat at offset 9 counts for nothing but is covered: the watermark moves past it.
    assert deduped.offsets == {"clicks_0": (5, 9)}


def test_fold_multiplies_identical_effects_and_counts_a_repeated_event_once() -> None:
    alice = projections.click_effect("org", click())
    bob = projections.click_effect("org", click(advocate_id="bob", unique=False))
    pending = [
        Pending(alice, "clicks_0", 1, "e1"),
        Pending(bob, "clicks_0", 2, "e2"),
        Pending(alice, "clicks_0", 3, "e3"),
        Pending(alice, "clicks_0", 4, "e4"),
    ]
    update = fold(pending, "dims", {})
    assert update is not None and update.offsets == {"clicks_0": (1, 4)}
    assert update.counters["advocate"] == {
        "alice": {"clicks": 3, "unique_clicks": 3},
        "bob": {"clicks": 1},
    }
    assert update.counters["content"] == {"k1": {"clicks": 4, "unique_clicks": 3}}
    totals = fold(pending, "all", {})
    assert totals is not None and totals.counters == {"all": {"*": {"clicks": 4, "unique_clicks": 3}}}
    # The same event at a second offset (a producer's retry) counts once.
    retried = fold([*pending, Pending(alice, "clicks_0", 5, "e4")], "all", {})
    assert retried is not None and retried.counters == {"all": {"*": {"clicks": 4, "unique_clicks": 3}}}


def test_fold_keeps_a_watermark_per_source_partition() -> None:
    effect = projections.click_effect("org", click())
    pending = [
        Pending(effect, "clicks_0", 3, "a3"),
        Pending(effect, "clicks_1", 3, "b3"),
        Pending(effect, "clicks_0", 4, "a4"),
        Pending(effect, "clicks_1", 4, "b4"),
    ]
    update = fold(pending, "dims", {})
    assert update is not None and (update.doc_id, update.meta) == (
        "org|2026-11-02|dims",
        {"org": "org", "day": "2026-11-02", "part": "dims"},
    )
    assert update.counters["advocate"] == {"alice": {"clicks": 4, "unique_clicks": 4}}
    assert update.offsets == {"clicks_0": (3, 4), "clicks_1": (3, 4)}
    # Partition 1 has applied offset 3 already, partition 0 nothing.
    partial = fold(pending, "dims", {"clicks_1": 3})
    assert partial is not None and partial.counters["advocate"] == {
        "alice": {"clicks": 3, "unique_clicks": 3}
    }
    assert partial.offsets == {"clicks_0": (3, 4), "clicks_1": (4, 4)}


def test_rows_derive_ctr_conversion_rate_and_emv() -> None:
    totals = Totals()
    totals.add_doc(
        {"reach": 2000, "clicks": 40, "unique_clicks": 20, "leads": 5, "revenue": {"EUR": 1_234_500}}
    )
    row = totals.row("k", EmvRates(Decimal("0.50"), Decimal("4")))
    assert row["ctr"] == 0.01 and row["conversion_rate"] == 0.25
    assert row["emv"] == 28.0  # 40 x 0.50 + 2000 / 1000 x 4
    assert row["revenue"] == {"EUR": "123.45"}


def test_what_no_row_of_a_breakdown_holds_is_the_totals_less_the_rows() -> None:
    totals, rows = Totals(), Totals()
    totals.add_doc({"reach": 900, "clicks": 7, "unique_clicks": 5, "sales": 2, "revenue": {"EUR": 300_000}})
    rows.add_doc({"reach": 600, "clicks": 4, "unique_clicks": 4, "sales": 1, "revenue": {"EUR": 300_000}})
    rows.add_doc({"refunded": {"USD": 10_000}})
    totals.add_doc({"refunded": {"USD": 10_000}})

    left = analytics.unassigned("team", {}, totals, rows)
    assert left is not None
    row = left.row("", EmvRates())
    assert (row["reach"], row["clicks"], row["unique_clicks"], row["sales"]) == (300, 3, 1, 1)
    assert (row["revenue"], row["refunded"]) == ({}, {})  # no currency left over, none shown
    assert row["ctr"] == round(1 / 300, 6)  # the rates of what is left, not a difference of rates
    # Tags overlap, days and a filter leave nothing out: no such row.
    assert analytics.unassigned("tag", {}, totals, rows) is None
    assert analytics.unassigned("week", {}, totals, rows) is None
    assert analytics.unassigned("team", {"team": "sales"}, totals, rows) is None


def test_periods_group_days_into_iso_weeks_and_months() -> None:
    assert analytics.period_key("2026-11-04", "week") == "2026-11-02"
    assert analytics.period_key("2026-11-04", "month") == "2026-11"
    docs = [
        {"day": "2026-11-01", "clicks": 1},
        {"day": "2026-11-02", "clicks": 2},
        {"day": "2026-11-08", "clicks": 4},
    ]
    rows = analytics.group_rows(docs, "week", EmvRates())
    assert [(r["key"], r["clicks"]) for r in rows] == [("2026-10-26", 1), ("2026-11-02", 6)]


@pytest.mark.parametrize(
    ("raw", "currency"),
    [
        ("0", "EUR"),
        ("-1", "EUR"),
        ("abc", "EUR"),
        ("NaN", "EUR"),
        ("Infinity", "EUR"),
        (None, "EUR"),
        ("12.345", "EUR"),  # cents are the smallest unit of a euro
        ("1.5", "JPY"),  # a yen has no minor unit
        ("1.2345", "KWD"),
        ("1000000000000", "EUR"),
    ],
)
def test_bad_amounts_are_refused(raw: str | None, currency: str) -> None:
    with pytest.raises(InvalidInput):
        attribution.parse_amount(raw, currency)


@pytest.mark.parametrize(
    ("raw", "currency", "amount"),
    [("129.90", "EUR", "129.9"), ("500.00", "JPY", "500"), ("1.234", "KWD", "1.234"), ("7", "USD", "7")],
)
def test_amounts_within_their_currencys_minor_unit_are_accepted(raw: str, currency: str, amount: str) -> None:
    assert attribution.parse_amount(raw, currency) == Decimal(amount)


@pytest.mark.parametrize("raw", ["eur", "EURO", "E1R", None, "ABC", "XXX", "XTS", "XAU"])
def test_bad_currencies_are_refused(raw: str | None) -> None:
    with pytest.raises(InvalidInput):
        org_settings.parse_currency(raw)


def test_revenue_units_are_exact_for_every_currency() -> None:
    from iso4217 import Currency

    assert max(c.exponent or 0 for c in Currency) <= projections.MAX_AMOUNT_DECIMALS
    assert org_settings.parse_currency("KWD") == "KWD"


def test_credit_split_gives_last_touch_to_the_latest_click_and_equal_linear_parts() -> None:
    touches = [
        Touch("c1", "alice", "s1", T0),
        Touch("c2", "bob", "s2", T0.replace(hour=12)),
        Touch("c3", "alice", "s3", T0.replace(hour=11)),
    ]
    credits = attribution.credit_split(touches)
    assert credits == [
        {"advocate_id": "alice", "share_id": "s3", "last_touch": 0.0, "linear": 0.5},
        {"advocate_id": "bob", "share_id": "s2", "last_touch": 1.0, "linear": 0.5},
    ]


def test_a_conversion_reported_late_credits_no_touch_that_came_after_it() -> None:
    """The customer's touches from their later conversions are no credit for an earlier one."""
    at = T0.replace(hour=10)
    credited = Click(
        "c1", "org", "s1", "alice", "k1", "linkedin", None, [], at - timedelta(hours=1), "v", False, False
    )
    earlier = [
        Touch("c0", "carol", "s0", at - timedelta(days=40)),  # outside the window
        Touch("c2", "bob", "s2", at - timedelta(hours=2)),
        Touch("c3", "dave", "s3", at + timedelta(hours=1)),  # came after the conversion
    ]
    touches = attribution.creditable_touches(credited, [], earlier, at - timedelta(days=30), at)
    assert [t.click_id for t in touches] == ["c1", "c2"]
    assert attribution.credit_split(touches)[0] == {
        "advocate_id": "alice",
        "share_id": "s1",
        "last_touch": 1.0,
        "linear": 0.5,
    }


def test_goal_forecast_keeps_the_pace_of_a_cumulative_metric() -> None:
    start, end, today = date(2026, 11, 1), date(2026, 11, 30), date(2026, 11, 10)

    def status(target: float) -> goals.GoalProgress:
        return goals.goal_progress(
            cumulative=True, value=100, target=target, starts_on=start, ends_on=end, today=today
        )

    assert status(300).forecast == 300.0 and status(300).status == "on_track"
    assert status(350).status == "at_risk"  # 300 >= 0.8 x 350
    assert status(500).status == "behind"
    assert status(80).status == "achieved"
    assert status(400).progress == 0.25
    ratio = goals.goal_progress(
        cumulative=False, value=0.02, target=0.03, starts_on=start, ends_on=end, today=today
    )
    assert ratio.forecast == 0.02 and ratio.status == "behind"
    # The least positive target: the ratio stays a number an answer can carry.
    tiny = goals.goal_progress(
        cumulative=True, value=1, target=2.225073858507203e-309, starts_on=start, ends_on=end, today=today
    )
    assert math.isfinite(tiny.progress) and tiny.progress > 1e300 and tiny.status == "achieved"


def test_a_goal_filters_only_the_metrics_counted_per_advocate_content_team_network_or_tag() -> None:
    goals.check_filter("leads", "team", "sales")
    goals.check_filter("enrolled", None, None)
    for metric in (*goals.PROGRAM_METRICS, *goals.SURVEY_METRICS):
        with pytest.raises(InvalidInput, match="whole organisation") as refused:
            goals.check_filter(metric, "team", "sales")
        assert refused.value.errors[0]["field"] == "filter_dim"


def test_horizons_end_on_the_same_day_months_later() -> None:
    assert goals.add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert goals.add_months(date(2026, 11, 15), 3) == date(2027, 2, 15)


def test_nps_is_promoters_minus_detractors() -> None:
    assert surveys.nps([10, 9, 8, 6, 0]) == 0.0
    assert surveys.nps([10, 10, 7, 3]) == 25.0
    assert surveys.nps([]) is None


def test_csv_export_parses_back_to_the_same_numbers() -> None:
    rows = [Totals().row("2026-11-02", EmvRates()), {"key": "x", "clicks": 3, "revenue": {"EUR": "1.50"}}]
    parsed = list(csv.DictReader(io.StringIO(web.to_csv(rows))))
    assert parsed[0]["key"] == "2026-11-02" and parsed[0]["clicks"] == "0"
    assert parsed[1]["clicks"] == "3" and parsed[1]["revenue_EUR"] == "1.50"


def test_a_conversion_may_be_backdated_inside_its_window_and_never_into_the_future() -> None:
    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert attribution.conversion_time(None, now, 30) == now
    three_days_ago = datetime(2026, 12, 2, 9, 30, 0, 123456, tzinfo=UTC)
    assert attribution.conversion_time(three_days_ago, now, 30) == three_days_ago.replace(microsecond=123000)
    in_la = datetime.fromisoformat("2026-12-04T17:00:00-08:00")
    assert attribution.conversion_time(in_la, now, 30) == datetime(2026, 12, 5, 1, 0, tzinfo=UTC)
    for bad, message in (
        (datetime(2026, 12, 5, 12, 5, tzinfo=UTC), "future"),
        (datetime(2026, 11, 1, tzinfo=UTC), "30-day attribution window"),
    ):
        with pytest.raises(InvalidInput, match=message) as refused:
            attribution.conversion_time(bad, now, 30)
        assert refused.value.errors[0]["field"] == "occurred_at"


def test_an_employee_respondent_is_kept_under_a_keyed_hash_only() -> None:
    plain = hashlib.sha256(b"org-1|ann").hexdigest()  # what a known-id guess would compute
    key = surveys.respondent_key(b"s" * 32, "org-1", "ann")
    assert key == surveys.respondent_key(b"s" * 32, "org-1", "ann")  # ann answers once
    assert key not in (plain, surveys.respondent_key(b"t" * 32, "org-1", "ann"))
    assert key == surveys.keyed(b"s" * 32, plain)  # answers kept under the plain hash can be keyed


def test_small_employee_surveys_show_counts_only_and_customer_surveys_everything() -> None:
    at = datetime(2026, 12, 1, tzinfo=UTC)
    questions = [
        {"id": "q", "text": "Recommend?", "type": "nps"},
        {"id": "why", "text": "Why?", "type": "text"},
    ]
    answers = [surveys.Answer(f"a{n}", "o", "s", f"r{n}", {"q": 10, "why": "ok"}, at) for n in range(4)]
    employee = surveys.Survey("s", "o", "enps", "Pulse", questions, at)
    small = surveys.results(employee, answers, min_responses=5)
    assert (small["withheld"], small["responses"]) == (True, 4)
    assert small["questions"] == [
        {"id": "q", "text": "Recommend?", "type": "nps", "count": 4},
        {"id": "why", "text": "Why?", "type": "text", "count": 4},
    ]
    enough = surveys.results(employee, answers, min_responses=4)
    assert not enough["withheld"] and enough["questions"][0]["nps"] == 100.0
    customer = surveys.results(dataclasses.replace(employee, kind="customer"), answers[:1], min_responses=5)
    assert not customer["withheld"] and customer["questions"][1]["comments"] == ["ok"]


def test_production_refuses_the_development_survey_secret() -> None:
    with pytest.raises(ValueError, match="CHORUS_SURVEY_RESPONDENT_SECRET"):
        MetricsSettings(environment="prod")
    with pytest.raises(ValueError, match="CHORUS_SURVEY_RESPONDENT_SECRET"):
        MetricsSettings(environment="prod", survey_respondent_secret="short")
    assert MetricsSettings(environment="prod", survey_respondent_secret="x" * 32).survey_min_responses == 5


@pytest.mark.parametrize("text", ['=HYPERLINK("http://x")', "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_neutralised(text: str) -> None:
    rows = [{"key": text, "team": "sales", "clicks": -3, "tags": [text], "revenue": {text: text}}]
    [parsed] = list(csv.DictReader(io.StringIO(web.to_csv(rows), newline="")))
    assert parsed["key"] == "'" + text
    assert parsed["tags"] == "'" + text
    assert parsed[f"revenue_{text}"] == "'" + text
    assert parsed["team"] == "sales" and parsed["clicks"] == "-3"  # text and numbers otherwise kept


def test_csv_cells_that_are_plain_numbers_stay_numbers_even_when_negative() -> None:
    for number in ("-50.00", "-3", "-0.0001", "12.5"):
        assert web.neutralised(number) == number
    for formula in ("-3+4", "-1e3", "-", "-.5", "-2,5", "-3\n", "-\u0661"):  # the last an Arabic-Indic 1
        assert web.neutralised(formula) == "'" + formula
    rows = [
        {"key": "2026-11-02", "revenue": {"EUR": "-50.00"}},
        {"key": "2026-11-03", "revenue": {"EUR": "80.00"}},
    ]
    parsed = list(csv.DictReader(io.StringIO(web.to_csv(rows), newline="")))
    assert sum(Decimal(row["revenue_EUR"]) for row in parsed) == Decimal("30.00")


def test_a_click_touches_two_documents_of_its_day_the_totals_and_the_breakdowns() -> None:
    pending = [
        Pending(
            projections.click_effect("org", click(tags=["ai", "cloud"], team="sales")), "clicks_0", 1, "e1"
        )
    ]
    totals, breakdowns = (fold(pending, part, {}) for part in ("all", "dims"))
    assert totals is not None and totals.doc_id == "org|2026-11-02|all" and set(totals.counters) == {"all"}
    assert breakdowns is not None and breakdowns.doc_id == "org|2026-11-02|dims"
    assert set(breakdowns.counters) == {"advocate", "content", "team", "network", "tag"}


def test_a_conversion_waits_for_its_click_no_longer_than_its_request_may_take() -> None:
    with pytest.raises(ValueError, match="CHORUS_CONVERSION_CLICK_WAIT_S"):
        MetricsSettings(conversion_click_wait_s=5, mongo_request_timeout_s=5)
    assert MetricsSettings(conversion_click_wait_s=2, mongo_request_timeout_s=5).conversion_click_wait_s == 2


# --- time zones --------------------------------------------------------------------------------


def test_a_quarter_hour_falls_on_the_day_of_the_organisations_zone() -> None:
    evening_in_california = datetime(2026, 5, 2, 0, 59, tzinfo=UTC)  # 17:59 on 1 May in Los Angeles
    assert utc_slot(evening_in_california) == "2026-05-02T00:45"
    assert slot_day(utc_slot(evening_in_california), "UTC") == "2026-05-02"
    assert slot_day(utc_slot(evening_in_california), "America/Los_Angeles") == "2026-05-01"
    # India is 5:30 ahead: its day begins at 18:30 UTC, on a quarter hour.
    assert slot_day(utc_slot(datetime(2026, 5, 1, 18, 29, tzinfo=UTC)), "Asia/Kolkata") == "2026-05-01"
    assert slot_day(utc_slot(datetime(2026, 5, 1, 18, 30, tzinfo=UTC)), "Asia/Kolkata") == "2026-05-02"
    # Nepal is 5:45 ahead.
    assert slot_day(utc_slot(datetime(2026, 5, 1, 18, 14, tzinfo=UTC)), "Asia/Kathmandu") == "2026-05-01"
    assert slot_day(utc_slot(datetime(2026, 5, 1, 18, 15, tzinfo=UTC)), "Asia/Kathmandu") == "2026-05-02"


def test_the_quarter_hours_of_a_poll_merge_into_one_update_per_local_day_in_offset_order() -> None:
    """Clicks of one partition at 16:50, 17:10 and 18:05 in Los Angeles (23:50, 00:10 and 01:05
    UTC, two UTC days): one day in Los Angeles, so one document update, watermarks per source."""
    at = [datetime(2026, 5, 1, 23, 50, tzinfo=UTC), datetime(2026, 5, 2, 0, 10, tzinfo=UTC)]
    at.append(datetime(2026, 5, 2, 1, 5, tzinfo=UTC))
    items = [
        delivered(click(click_id="c1", clicked_at=at[1]), 0, 10),
        delivered(click(click_id="c2", clicked_at=at[0]), 0, 11),
        delivered(click(click_id="c3", clicked_at=at[2], bot=True), 0, 12),
        delivered(click(click_id="c4", clicked_at=at[1]), 0, 13),
        delivered(click(click_id="c5", clicked_at=at[0]), 1, 7),
        delivered(click(click_id="c4", clicked_at=at[1]), 1, 8, event_id="p0-13"),  # a repeat
    ]
    tally = projections.tally_events("chorus.clicks", items)
    assert len(tally.days) == 3  # three quarter hours
    utc_days = localized(tally, {})
    assert sorted(day for _, day in utc_days.days) == ["2026-05-01", "2026-05-02"]
    day = only_day(tally, {"org": "America/Los_Angeles"})
    assert (day.org, day.day) == ("org", "2026-05-01")
    assert list(day.runs["chorus_clicks_0"].offsets) == [10, 11, 12, 13]
    assert list(day.runs["chorus_clicks_1"].offsets) == [7, 8]
    update = projections.fold(day, "all", {})
    assert update is not None and update.doc_id == "org|2026-05-01|all"
    assert update.counters == {"all": {"*": {"clicks": 4, "unique_clicks": 4, "bot_clicks": 1}}}
    assert update.offsets == {"chorus_clicks_0": (10, 13), "chorus_clicks_1": (7, 8)}
    # Redelivered after partition 0 applied offset 11: the bot click and c4 remain, c5 from 1.
    again = projections.fold(day, "all", {"chorus_clicks_0": 11})
    assert again is not None
    assert again.counters == {"all": {"*": {"clicks": 2, "unique_clicks": 2, "bot_clicks": 1}}}


def test_an_organisations_days_are_counted_in_utc_when_its_zone_is_unknown_here() -> None:
    assert org_settings.counting_zone("America/Los_Angeles") == "America/Los_Angeles"
    assert org_settings.counting_zone("Mars/Olympus") == "UTC"


def test_an_integration_webhook_sends_what_its_document_says() -> None:
    # The body is the event's own JSON (webhooks/service.py); CloudEvent documents it in the
    # metrics document's `webhooks`. A field of the envelope added or renamed fails here.
    lead = LeadCaptured(conversion_id="v", key="v", customer_id="c", attributed=False, converted_at=T0)
    body = json.loads(Event.create(lead, tenant="org", source="/chorus/metrics").to_json_bytes())
    documented = CloudEvent.model_validate(body)
    assert set(body) == set(CloudEvent.model_fields)
    assert documented.type == "chorus.lead.captured" and documented.data == body["data"]

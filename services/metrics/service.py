"""Use cases of the metrics service: the one entry point for api.py, handlers.py and rebuild.py."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Sequence
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from services.metrics import domain
from services.metrics.domain import (
    ALL,
    COUNTERS,
    GROUP_BYS,
    TIME_GROUPS,
    EmvRates,
    Tally,
    Totals,
    Touch,
)
from services.metrics.schemas import ConversionIn, GoalIn, MetricsSettingsIn, ResponseIn, SurveyIn
from services.metrics.settings import MetricsSettings
from services.metrics.store import (
    API_KEYS,
    GOALS,
    SURVEYS,
    MetricsStore,
    click_index_doc,
    utc_now,
)
from shared.auth import API_KEY_ROLE, Principal, api_key_matches, generate_api_key
from shared.errors import Conflict, Forbidden, InvalidInput, NotFound
from shared.events import Event, EventData
from shared.events.advocates import AdvocateErased, AdvocateProfile
from shared.events.clicks import ClickRecorded
from shared.events.content import SettingsUpdated
from shared.events.conversions import Credit, LeadCaptured, SaleRecorded
from shared.events.training import CourseCompleted
from shared.idempotency import run_once
from shared.messaging import Batch, Delivered
from shared.messaging.tracing import inject_current
from shared.mongo import Document
from shared.outbox import Outbox, pending, with_outbox

log = logging.getLogger(__name__)

SOURCE = "/chorus/metrics"
MAX_RANGE_DAYS = 731
CUMULATIVE_METRICS = (*COUNTERS, "emv")
PROGRAM_METRICS = ("active_advocates", "enrolled", "active_ratio", "training_completion")
SURVEY_METRICS = ("nps", "average")

DICTIONARY: list[dict[str, str]] = [
    {
        "name": "shares",
        "definition": "links shared by advocates",
        "formula": "count(share.made)",
        "unit": "count",
    },
    {
        "name": "reach",
        "definition": "potential reach: the audience of each share's network at share time",
        "formula": "sum(share.audience_size)",
        "unit": "people",
    },
    {
        "name": "clicks",
        "definition": "clicks by people, without bot clicks and the advocate's own clicks",
        "formula": "count(click where not bot and not self)",
        "unit": "count",
    },
    {
        "name": "unique_clicks",
        "definition": "clicks by distinct visitors within the unique-click window",
        "formula": "count(click where unique and not bot and not self)",
        "unit": "count",
    },
    {
        "name": "bot_clicks",
        "definition": "clicks from bots and link previewers (never in headline figures)",
        "formula": "count(click where bot)",
        "unit": "count",
    },
    {
        "name": "self_clicks",
        "definition": "advocates clicking their own links (never in headline figures)",
        "formula": "count(click where self and not bot)",
        "unit": "count",
    },
    {
        "name": "leads",
        "definition": "leads reported through the conversions API, one per customer",
        "formula": "count(distinct customer with a lead)",
        "unit": "count",
    },
    {
        "name": "sales",
        "definition": "sales reported through the conversions API, one per customer",
        "formula": "count(distinct customer with a sale)",
        "unit": "count",
    },
    {
        "name": "revenue",
        "definition": "amount of the sales, per ISO 4217 currency",
        "formula": "sum(sale.amount) per currency",
        "unit": "currency",
    },
    {"name": "ctr", "definition": "click-through rate", "formula": "unique_clicks / reach", "unit": "ratio"},
    {
        "name": "conversion_rate",
        "definition": "leads per unique click",
        "formula": "leads / unique_clicks",
        "unit": "ratio",
    },
    {
        "name": "emv",
        "definition": "earned media value from the organisation's CPC and CPM",
        "formula": "clicks x CPC + reach / 1000 x CPM",
        "unit": "currency of the settings",
    },
    {
        "name": "active_ratio",
        "definition": "enrolled advocates who shared in the last 30 days",
        "formula": "active advocates / enrolled advocates",
        "unit": "ratio",
    },
    {
        "name": "training_completion",
        "definition": "enrolled advocates who completed at least one course",
        "formula": "trained advocates / enrolled advocates",
        "unit": "ratio",
    },
    {
        "name": "nps",
        "definition": "net promoter score of a survey's 0-10 question (eNPS for employees)",
        "formula": "100 x (promoters(9-10) - detractors(0-6)) / answers",
        "unit": "score -100..100",
    },
    {
        "name": "average",
        "definition": "average of a survey's 1-5 rating question",
        "formula": "sum(rating) / answers",
        "unit": "1..5",
    },
]


def new_id() -> str:
    """Time-ordered ids, so cursor pages come back in creation order."""
    return f"{int(time.time() * 1000):013x}{secrets.token_hex(5)}"


def _parse_day_range(from_: date, to: date) -> tuple[str, str]:
    if to < from_:
        raise InvalidInput.field("to", "must not be before 'from'")
    if (to - from_).days > MAX_RANGE_DAYS:
        raise InvalidInput.field("to", f"the range may span at most {MAX_RANGE_DAYS} days")
    return from_.isoformat(), to.isoformat()


def _parse_decimal(name: str, raw: str) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidInput.field(name, "must be a decimal number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput.field(name, "must be zero or more")
    return value


class MetricsService:
    def __init__(self, settings: MetricsSettings, db: AsyncDatabase[Document], outbox: Outbox) -> None:
        self.settings = settings
        self.db = db
        self.store = MetricsStore(db)
        self.outbox = outbox

    # === projections ===============================================================================

    async def project(self, collection: str, batch: Batch) -> None:
        """Fold a batch (a poll: any partitions) into the counters of `collection`, exactly once."""
        await self.apply_tally(collection, batch.topic, domain.tally_events(batch.topic, batch.items))

    async def apply_tally(self, collection: str, topic: str, tally: Tally) -> None:
        """Write a batch's tally (made here or by the projector's worker process)."""
        tally.without_advocates(await self.store.erased_among(tally.advocates()))
        # Independent documents, written concurrently: the advocates' last share and the
        # counters. Shares and conversions may be published twice by an outbox relay; they also
        # dedupe by event id.
        await asyncio.gather(
            *(
                self.store.advocate_shared(org, a, shared_at)
                for (org, a), shared_at in tally.last_share.items()
            ),
            self.store.apply(
                collection, tally.days.values(), by_event_id=topic in self.settings.outboxed_topics
            ),
        )

    async def index_clicks(self, items: Sequence[Delivered]) -> None:
        """Keep each click for attribution (conversions name it by id). Its own consumer group:
        an insert per click costs more than the counters of a whole batch, and the funnel should
        not wait for it."""
        advocates = {(d.event.tenant, d.event.data.advocate_id) for d in items}
        erased = await self.store.erased_among(advocates)
        await self.store.index_clicks(
            [
                click_index_doc(d.event.tenant, d.event.data, d.trace_carrier())
                for d in items
                if isinstance(d.event.data, ClickRecorded)
                and (d.event.tenant, d.event.data.advocate_id) not in erased
            ]
        )

    async def project_live(self, topic: str, tally: Tally) -> None:
        await self.apply_tally(await self.store.active_stats(), topic, tally)

    async def advocate_profile(self, org: str, profile: AdvocateProfile) -> None:
        if await self.store.erased_among({(org, profile.advocate_id)}):
            return
        await self.store.upsert_advocate(org, profile.advocate_id, profile.team)

    async def advocate_erased(self, org: str, erased: AdvocateErased) -> None:
        await self.store.mark_erased(org, erased.advocate_id)
        await self.store.erase_advocate(org, erased.advocate_id, await self.store.active_stats())
        await self.store.erase_customer_touches(org, erased.advocate_id)
        await self.store.anonymise_responses(org, _respondent_hash(org, erased.advocate_id))
        # Last, so that "no longer enrolled" means every step above is done.
        await self.store.delete_advocate(org, erased.advocate_id)

    async def course_completed(self, org: str, course: CourseCompleted) -> None:
        if await self.store.erased_among({(org, course.advocate_id)}):
            return
        await self.store.course_completed(org, course.advocate_id, course.course_id)

    async def settings_updated(self, org: str, updated: SettingsUpdated) -> None:
        await self.store.set_org_settings(org, {"attribution_window_days": updated.attribution_window_days})

    # === API keys ==================================================================================

    async def resolve_api_key(self, key_id: str, secret: str) -> str | None:
        doc = await self.store.api_key(key_id)
        if (
            doc is None
            or doc.get("revoked_at") is not None
            or not api_key_matches(secret, doc["secret_hash"])
        ):
            return None
        return str(doc["org"])

    async def create_api_key(self, principal: Principal, name: str) -> dict[str, Any]:
        key = generate_api_key()
        doc = {
            "_id": key.key_id,
            "org": principal.org,
            "name": name,
            "secret_hash": key.secret_hash,
            "created_at": utc_now(),
            "revoked_at": None,
            "created_by": principal.sub,
        }
        await self.store.insert_api_key(doc)
        return {**_api_key_out(doc), "api_key": key.plaintext}

    async def list_api_keys(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        docs, next_cursor = await self.store.list_by_org(API_KEYS, principal.org, cursor, limit)
        return {"items": [_api_key_out(d) for d in docs], "next_cursor": next_cursor}

    async def revoke_api_key(self, principal: Principal, key_id: str) -> dict[str, Any]:
        doc = await self.store.revoke_api_key(principal.org, key_id, utc_now())
        if doc is None:
            raise NotFound(f"no API key {key_id!r}")
        return _api_key_out(doc)

    # === settings ==================================================================================

    async def rates(self, org: str) -> tuple[EmvRates, int]:
        doc = await self.store.org_settings(org)
        rates = EmvRates(
            Decimal(doc.get("cpc", "0")), Decimal(doc.get("cpm", "0")), doc.get("currency", "USD")
        )
        window = int(doc.get("attribution_window_days", self.settings.default_attribution_window_days))
        return rates, window

    async def get_settings(self, principal: Principal) -> dict[str, Any]:
        rates, window = await self.rates(principal.org)
        return {
            "cpc": str(rates.cpc),
            "cpm": str(rates.cpm),
            "currency": rates.currency,
            "attribution_window_days": window,
            "emv_formula": rates.formula(),
        }

    async def put_settings(self, principal: Principal, body: MetricsSettingsIn) -> dict[str, Any]:
        cpc, cpm = _parse_decimal("cpc", body.cpc), _parse_decimal("cpm", body.cpm)
        currency = domain.parse_currency(body.currency)
        await self.store.set_org_settings(
            principal.org, {"cpc": str(cpc), "cpm": str(cpm), "currency": currency}
        )
        return await self.get_settings(principal)

    # === conversions ===============================================================================

    async def record_conversion(
        self, principal: Principal, body: ConversionIn, idempotency_key: str | None
    ) -> dict[str, Any]:
        response, _ = await run_once(
            self.db,
            org=principal.org,
            scope="conversions",
            key=idempotency_key,
            body=body.model_dump(mode="json"),
            create=lambda: self._convert(principal.org, body),
        )
        return response

    async def _convert(self, org: str, body: ConversionIn) -> dict[str, Any]:
        amount: Decimal | None = None
        currency: str | None = None
        if body.type == "sale":
            currency = domain.parse_currency(body.currency)
            amount = domain.parse_amount(body.amount, currency)
        elif body.amount is not None or body.currency is not None:
            raise InvalidInput.field("amount", "only sales carry an amount and a currency")
        now = utc_now()
        _, window_days = await self.rates(org)
        since = now - timedelta(days=window_days)
        click = await self.store.find_click(org, body.click_id) if body.click_id else None
        reason: str | None = None
        if body.click_id is None:
            reason = "no click id"
        elif click is None or click.get("bot") or click.get("advocate_id") == "erased":
            reason = "unknown click id"
        elif click["clicked_at"] < since:
            reason = f"the click is older than the {window_days}-day attribution window"
        attributed = reason is None
        credits: list[dict[str, Any]] = []
        if attributed and click is not None:
            touches = [_touch(click)]
            if click.get("visitor_hash"):
                touches += [
                    _touch(c) for c in await self.store.visitor_clicks(org, click["visitor_hash"], since)
                ]
            touches += [
                Touch(t["click_id"], t["advocate_id"], t["share_id"], t["clicked_at"])
                for t in await self.store.customer_touches(org, body.customer_id)
                if t["clicked_at"] >= since
            ]
            credits = domain.credit_split(touches)
        conversion_id = uuid.uuid4().hex
        fields: dict[str, Any] = {
            "conversion_id": conversion_id,
            "key": click["share_id"] if attributed and click else conversion_id,
            "click_id": body.click_id,
            "customer_id": body.customer_id,
            "attributed": attributed,
            "share_id": click["share_id"] if attributed and click else None,
            "advocate_id": click["advocate_id"] if attributed and click else None,
            "content_id": click["content_id"] if attributed and click else None,
            "credits": [Credit(**c) for c in credits],
            "converted_at": now,
            "network": click.get("network") if attributed and click else None,
            "team": click.get("team") if attributed and click else None,
            "tags": click.get("tags", []) if attributed and click else [],
        }
        data: EventData = (
            SaleRecorded(**fields, amount=str(amount), currency=currency or "")
            if body.type == "sale"
            else LeadCaptured(**fields)
        )
        event = Event.create(data, tenant=org, source=SOURCE, subject=conversion_id, event_id=conversion_id)
        response: dict[str, Any] = {
            "conversion_id": conversion_id,
            "type": body.type,
            "customer_id": body.customer_id,
            "attributed": attributed,
            "reason": reason,
            "click_id": body.click_id,
            "share_id": fields["share_id"],
            "advocate_id": fields["advocate_id"],
            "content_id": fields["content_id"],
            "credits": credits,
            "amount": str(amount) if amount is not None else None,
            "currency": currency,
            "converted_at": now.isoformat(),
            "duplicate": False,
        }
        claim_id = f"{org}|{body.type}|{body.customer_id}"
        # The conversion joins the trace of the click it names (and so of the share), and links
        # the integrator's request that reported it.
        record = pending(
            event, trace=click.get("trace", {}) if attributed and click else {}, link=inject_current()
        )
        claim = with_outbox(
            {
                "_id": claim_id,
                "org": org,
                "conversion_id": conversion_id,
                "response": response,
                "created_at": now,
            },
            [record],
        )
        existing = await self.store.claim_conversion(claim)
        if existing is not None:  # the same customer and type counts once
            return {**existing["response"], "duplicate": True}
        self.outbox.nudge()
        if attributed and click is not None:
            await self.store.add_customer_touches(
                org,
                body.customer_id,
                [
                    {
                        "click_id": click["_id"],
                        "advocate_id": click["advocate_id"],
                        "share_id": click["share_id"],
                        "clicked_at": click["clicked_at"],
                    }
                ],
            )
        return response

    # === analytics =================================================================================

    def _scope(self, group_by: str, filters: dict[str, str]) -> tuple[str, list[str] | None]:
        """Which projection documents answer a query: (dimension, keys)."""
        if group_by not in GROUP_BYS:
            raise InvalidInput.field("group_by", f"must be one of {', '.join(GROUP_BYS)}")
        if len(filters) > 1:
            raise InvalidInput.field("filters", "give at most one of advocate, content, team, network, tag")
        if group_by in TIME_GROUPS:
            if filters:
                dim, key = next(iter(filters.items()))
                return dim, [key]
            return ALL, None
        if filters and group_by not in filters:
            raise InvalidInput.field(
                "filters", f"with group_by={group_by} only a {group_by} filter can be given"
            )
        return group_by, [filters[group_by]] if filters else None

    async def funnel(
        self, principal: Principal, from_: date, to: date, group_by: str, filters: dict[str, str]
    ) -> dict[str, Any]:
        first, last = _parse_day_range(from_, to)
        dim, keys = self._scope(group_by, filters)
        collection = await self.store.active_stats()
        rates, _ = await self.rates(principal.org)
        docs = await self.store.stats_docs(collection, principal.org, dim, first, last, keys)
        rows = domain.group_rows(docs, group_by, rates)
        totals = Totals()
        # Tags overlap (a share may carry several), so totals come from the un-split documents.
        total_docs = (
            docs
            if filters or group_by in TIME_GROUPS
            else await self.store.stats_docs(collection, principal.org, ALL, first, last)
        )
        for doc in total_docs:
            totals.add_doc(doc)
        return {
            "from": from_,
            "to": to,
            "group_by": group_by,
            "filters": filters,
            "rows": rows,
            "totals": totals.row("total", rates),
            "emv": _emv_out(rates),
        }

    async def timeseries(
        self, principal: Principal, metric: str, from_: date, to: date, interval: str, filters: dict[str, str]
    ) -> dict[str, Any]:
        if interval not in TIME_GROUPS:
            raise InvalidInput.field("interval", "must be day, week or month")
        if metric not in (*COUNTERS, "ctr", "conversion_rate", "emv"):
            raise InvalidInput.field("metric", "must be a funnel metric (see /v1/metrics/dictionary)")
        funnel = await self.funnel(principal, from_, to, interval, filters)
        by_period = {row["key"]: row[metric] for row in funnel["rows"]}
        periods = sorted({domain.period_key(d, interval) for d in domain.days_between(from_, to)})
        points = [{"period": p, "value": float(by_period.get(p, 0))} for p in periods]
        return {"metric": metric, "interval": interval, "filters": filters, "points": points}

    async def me_stats(self, principal: Principal, days: int) -> dict[str, Any]:
        today = utc_now().date()
        start = today - timedelta(days=days - 1)
        previous_start = start - timedelta(days=days)
        collection = await self.store.active_stats()
        rates, _ = await self.rates(principal.org)
        docs = await self.store.stats_docs(
            collection,
            principal.org,
            "advocate",
            previous_start.isoformat(),
            today.isoformat(),
            [principal.sub],
        )
        current, previous = Totals(), Totals()
        for doc in docs:
            (current if doc["day"] >= start.isoformat() else previous).add_doc(doc)
        names = ("reach", "shares", "clicks", "unique_clicks", "leads", "sales")
        trend = {}
        for name in names:
            now_value, before = current.counters[name], previous.counters[name]
            change = round(now_value / before - 1, 6) if before else None
            trend[name] = {"current": now_value, "previous": before, "change": change}
        daily = domain.group_rows([d for d in docs if d["day"] >= start.isoformat()], "day", rates)
        return {
            "advocate_id": principal.sub,
            "days": days,
            **{n: current.counters[n] for n in names},
            "trend": trend,
            "daily": daily,
        }

    async def program(self, org: str) -> dict[str, Any]:
        cutoff = utc_now() - timedelta(days=self.settings.active_window_days)
        teams: dict[str, dict[str, int]] = {}
        overall = {"enrolled": 0, "active": 0, "trained": 0}
        for doc in await self.store.advocates(org):
            active = doc.get("last_shared_at") is not None and doc["last_shared_at"] >= cutoff
            for bucket in (overall, teams.setdefault(doc.get("team") or "none", dict.fromkeys(overall, 0))):
                bucket["enrolled"] += 1
                bucket["active"] += int(active)
                bucket["trained"] += int(bool(doc.get("trained")))

        def ratios(b: dict[str, int]) -> dict[str, Any]:
            n = b["enrolled"]
            return {
                **b,
                "active_ratio": round(b["active"] / n, 6) if n else 0.0,
                "training_completion": round(b["trained"] / n, 6) if n else 0.0,
            }

        return {**ratios(overall), "by_team": [{"team": t, **ratios(b)} for t, b in sorted(teams.items())]}

    def dictionary(self) -> dict[str, Any]:
        return {"items": DICTIONARY}

    # === goals =====================================================================================

    async def create_goal(self, principal: Principal, body: GoalIn) -> dict[str, Any]:
        today = utc_now().date()
        if body.horizon_months is not None:
            if body.starts_on or body.ends_on:
                raise InvalidInput.field("horizon_months", "give a horizon or dates, not both")
            starts_on, ends_on = today, domain.add_months(today, body.horizon_months) - timedelta(days=1)
        elif body.starts_on and body.ends_on:
            starts_on, ends_on = body.starts_on, body.ends_on
            if ends_on < starts_on:
                raise InvalidInput.field("ends_on", "must not be before starts_on")
        else:
            raise InvalidInput.field(
                "horizon_months", "give a horizon of 1, 3 or 6 months, or starts_on and ends_on"
            )
        if (body.filter_dim is None) != (body.filter_key is None):
            raise InvalidInput.field("filter_key", "filter_dim and filter_key go together")
        if body.metric in SURVEY_METRICS:
            if not body.survey_id or not body.question_id:
                raise InvalidInput.field("survey_id", "a survey goal names survey_id and question_id")
            survey = await self.store.get(SURVEYS, principal.org, body.survey_id)
            if survey is None:
                raise NotFound(f"no survey {body.survey_id!r}")
            wanted = "nps" if body.metric == "nps" else "rating"
            if not any(q["id"] == body.question_id and q["type"] == wanted for q in survey["questions"]):
                raise InvalidInput.field("question_id", f"must name a {wanted} question of the survey")
        doc = {
            "_id": new_id(),
            "org": principal.org,
            "name": body.name,
            "metric": body.metric,
            "target": body.target,
            "starts_on": starts_on.isoformat(),
            "ends_on": ends_on.isoformat(),
            "filter_dim": body.filter_dim,
            "filter_key": body.filter_key,
            "survey_id": body.survey_id,
            "question_id": body.question_id,
            "created_at": utc_now(),
            "created_by": principal.sub,
        }
        await self.store.insert(GOALS, doc)
        return await self._goal_out(doc)

    async def get_goal(self, principal: Principal, goal_id: str) -> dict[str, Any]:
        doc = await self.store.get(GOALS, principal.org, goal_id)
        if doc is None:
            raise NotFound(f"no goal {goal_id!r}")
        return await self._goal_out(doc)

    async def list_goals(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        docs, next_cursor = await self.store.list_by_org(GOALS, principal.org, cursor, limit)
        return {"items": [await self._goal_out(d) for d in docs], "next_cursor": next_cursor}

    async def delete_goal(self, principal: Principal, goal_id: str) -> None:
        if not await self.store.delete(GOALS, principal.org, goal_id):
            raise NotFound(f"no goal {goal_id!r}")

    async def goal_value(self, goal: Document, today: date) -> float:
        org, metric = goal["org"], goal["metric"]
        if metric in PROGRAM_METRICS:
            program = await self.program(org)
            key = "active" if metric == "active_advocates" else str(metric)
            return float(program[key])
        if metric in SURVEY_METRICS:
            results = await self.survey_results_for(org, goal["survey_id"])
            for q in results["questions"]:
                if q["id"] == goal["question_id"]:
                    return float(q.get(metric) or 0.0)
            return 0.0
        end = min(date.fromisoformat(goal["ends_on"]), today)
        if end < date.fromisoformat(goal["starts_on"]):
            return 0.0
        dim, keys = (goal["filter_dim"], [goal["filter_key"]]) if goal.get("filter_dim") else (ALL, None)
        rates, _ = await self.rates(org)
        docs = await self.store.stats_docs(
            await self.store.active_stats(), org, dim, goal["starts_on"], end.isoformat(), keys
        )
        totals = Totals()
        for doc in docs:
            totals.add_doc(doc)
        return float(totals.row("", rates)[metric])

    async def _goal_out(self, goal: Document) -> dict[str, Any]:
        today = utc_now().date()
        value = await self.goal_value(goal, today)
        progress = domain.goal_progress(
            cumulative=goal["metric"] in CUMULATIVE_METRICS,
            value=value,
            target=float(goal["target"]),
            starts_on=date.fromisoformat(goal["starts_on"]),
            ends_on=date.fromisoformat(goal["ends_on"]),
            today=today,
        )
        history = [
            {"date": s["date"], "value": s["value"], "enrolled": s["enrolled"]}
            for s in await self.store.snapshots(goal["org"], goal["_id"])
        ]
        return {
            "goal_id": goal["_id"],
            "name": goal["name"],
            "metric": goal["metric"],
            "target": goal["target"],
            "starts_on": goal["starts_on"],
            "ends_on": goal["ends_on"],
            "filter_dim": goal.get("filter_dim"),
            "filter_key": goal.get("filter_key"),
            "survey_id": goal.get("survey_id"),
            "question_id": goal.get("question_id"),
            "value": progress.value,
            "progress": progress.progress,
            "forecast": progress.forecast,
            "status": progress.status,
            "history": history,
        }

    async def snapshot_goals(self) -> int:
        """Keep each running goal's value of the day, and the enrolment behind it."""
        today = utc_now().date()
        count = 0
        for goal in await self.store.all_goals():
            if not goal["starts_on"] <= today.isoformat() <= goal["ends_on"]:
                continue
            value = await self.goal_value(goal, today)
            enrolled = (await self.program(goal["org"]))["enrolled"]
            await self.store.save_snapshot(goal["org"], goal["_id"], today.isoformat(), value, enrolled)
            count += 1
        return count

    # === surveys ===================================================================================

    async def create_survey(self, principal: Principal, body: SurveyIn) -> dict[str, Any]:
        ids = [q.id for q in body.questions]
        if len(set(ids)) != len(ids):
            raise InvalidInput.field("questions", "question ids must be unique")
        if body.kind == "enps" and not any(q.type == "nps" for q in body.questions):
            raise InvalidInput.field("questions", "an eNPS survey needs an nps question")
        doc = {
            "_id": new_id(),
            "org": principal.org,
            "kind": body.kind,
            "title": body.title,
            "questions": [q.model_dump() for q in body.questions],
            "created_at": utc_now(),
        }
        await self.store.insert(SURVEYS, doc)
        return _survey_out(doc)

    async def list_surveys(self, principal: Principal, cursor: str | None, limit: int) -> dict[str, Any]:
        docs, next_cursor = await self.store.list_by_org(SURVEYS, principal.org, cursor, limit)
        return {"items": [_survey_out(d) for d in docs], "next_cursor": next_cursor}

    async def _survey(self, org: str, survey_id: str) -> Document:
        doc = await self.store.get(SURVEYS, org, survey_id)
        if doc is None:
            raise NotFound(f"no survey {survey_id!r}")
        return doc

    async def respond(self, principal: Principal, survey_id: str, body: ResponseIn) -> dict[str, Any]:
        survey = await self._survey(principal.org, survey_id)
        employee_survey = survey["kind"] in ("enps", "pulse")
        if employee_survey and principal.kind != "user":
            raise Forbidden("employee surveys are answered by employees with their own sign-in")
        if not employee_survey and API_KEY_ROLE not in principal.roles and not principal.is_admin:
            raise Forbidden("customer surveys are recorded with an API key or by an admin")
        answers = _check_answers(survey["questions"], body.answers)
        # Employees answer once each, but anonymously: only a hash of who answered is kept.
        if employee_survey:
            respondent: str | None = _respondent_hash(principal.org, principal.sub)
            response_id = f"{survey_id}|{respondent}"
        else:
            respondent = None
            response_id = (
                f"{survey_id}|c:{body.customer_id}" if body.customer_id else f"{survey_id}|{new_id()}"
            )
        doc = {
            "_id": response_id,
            "org": principal.org,
            "survey_id": survey_id,
            "respondent": respondent,
            "answers": answers,
            "created_at": utc_now(),
        }
        if not await self.store.add_response(doc):
            raise Conflict("this survey was already answered by this respondent")
        return {"survey_id": survey_id, "accepted": True}

    async def survey_results(self, principal: Principal, survey_id: str) -> dict[str, Any]:
        return await self.survey_results_for(principal.org, survey_id)

    async def survey_results_for(self, org: str, survey_id: str) -> dict[str, Any]:
        survey = await self._survey(org, survey_id)
        responses = await self.store.responses(org, survey_id)
        questions = []
        for q in survey["questions"]:
            values = [r["answers"][q["id"]] for r in responses if q["id"] in r["answers"]]
            result: dict[str, Any] = {
                "id": q["id"],
                "text": q["text"],
                "type": q["type"],
                "count": len(values),
            }
            if q["type"] == "nps":
                result["nps"] = domain.nps([int(v) for v in values])
            elif q["type"] == "rating":
                result["average"] = domain.average([float(v) for v in values])
            else:
                result["comments"] = [str(v) for v in values][-200:]
            questions.append(result)
        return {
            "survey_id": survey_id,
            "kind": survey["kind"],
            "responses": len(responses),
            "questions": questions,
        }


def _respondent_hash(org: str, sub: str) -> str:
    return hashlib.sha256(f"{org}|{sub}".encode()).hexdigest()


def _check_answers(questions: list[Document], answers: dict[str, int | str]) -> dict[str, int | str]:
    by_id = {q["id"]: q for q in questions}
    for qid, value in answers.items():
        question = by_id.get(qid)
        if question is None:
            raise InvalidInput.field(f"answers.{qid}", "is not a question of this survey")
        if question["type"] == "nps" and not (isinstance(value, int) and 0 <= value <= 10):
            raise InvalidInput.field(f"answers.{qid}", "must be a whole number from 0 to 10")
        if question["type"] == "rating" and not (isinstance(value, int) and 1 <= value <= 5):
            raise InvalidInput.field(f"answers.{qid}", "must be a whole number from 1 to 5")
        if question["type"] == "text" and not (isinstance(value, str) and len(value) <= 2000):
            raise InvalidInput.field(f"answers.{qid}", "must be text of at most 2000 characters")
    if not answers:
        raise InvalidInput.field("answers", "answer at least one question")
    return answers


def _touch(click: Document) -> Touch:
    return Touch(click["_id"], click["advocate_id"], click["share_id"], click["clicked_at"])


def _api_key_out(doc: Document) -> dict[str, Any]:
    return {
        "key_id": doc["_id"],
        "name": doc["name"],
        "created_at": doc["created_at"],
        "revoked_at": doc.get("revoked_at"),
    }


def _survey_out(doc: Document) -> dict[str, Any]:
    return {
        "survey_id": doc["_id"],
        "kind": doc["kind"],
        "title": doc["title"],
        "questions": doc["questions"],
        "created_at": doc["created_at"],
    }


def _emv_out(rates: EmvRates) -> dict[str, str]:
    return {
        "formula": rates.formula(),
        "cpc": str(rates.cpc),
        "cpm": str(rates.cpm),
        "currency": rates.currency,
    }

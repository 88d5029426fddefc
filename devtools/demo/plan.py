"""The demo's program and its days, decided up front from the seed: pure, no I/O.

Everything random about the demo is drawn here, from one `random.Random(seed)`, so a seed always
gives the same program (advocates, content, who shares what when, every visit, lead and sale);
what the services answer (ids, click ids) is all that differs between two runs of one seed.

Shapes follow what advocacy programs report: activity is heavily skewed (a Pareto weight per
advocate, some never train, some train and never share), audiences are log-normal (most have a
few hundred connections, a few have tens of thousands), visits follow audience size with a
network's click-through rate and fade over three days, every posted link is fetched by its
network's preview bot, some visitors come back, and leads and sales come days after the visit.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from enum import StrEnum

DISCLOSURE = "#employee"
BLOCKED_WORDS = ("guaranteed", "risk-free")
CURRENCY = "EUR"

# Teams of different sizes (the team leaderboard ranks points per advocate, so size is fair game).
TEAMS: tuple[tuple[str, str, float], ...] = (
    # team, department, share of the advocates
    ("Sales", "Revenue", 0.30),
    ("Engineering", "Product", 0.28),
    ("Marketing", "Revenue", 0.16),
    ("Customer Success", "Revenue", 0.16),
    ("People", "Operations", 0.10),
)
LOCATIONS: tuple[tuple[str, str, float], ...] = (
    # location, language, share
    ("Berlin", "de", 0.35),
    ("London", "en", 0.30),
    ("Lisbon", "en", 0.15),
    ("New York", "en", 0.20),
)
FIRST_NAMES = (
    "Ava", "Ben", "Chiara", "Dev", "Elif", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kemi", "Lars",
    "Maya", "Noah", "Olga", "Priya", "Quentin", "Rosa", "Sami", "Tara", "Umar", "Vera", "Wen", "Yusuf",
)  # fmt: skip
LAST_NAMES = (
    "Almeida", "Brandt", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Hoffmann", "Ito",
    "Jansen", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Rossi", "Schmidt",
)  # fmt: skip

# Click-through rate of a post's audience, by network (a visit per this many followers).
CTR: dict[str, float] = {
    "linkedin": 0.006,
    "xing": 0.006,
    "x": 0.003,
    "facebook": 0.003,
    "instagram": 0.0015,
    "mastodon": 0.004,
    "bluesky": 0.004,
}
# The bot each network sends to draw a link's preview card when the post goes up.
PREVIEW_BOTS: dict[str, str] = {
    "linkedin": "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "xing": "XING-contenttabreceiver/2.0",
    "x": "Twitterbot/1.0",
    "facebook": "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "instagram": "facebookexternalhit/1.1",
    "mastodon": "http.rb/5.1.1 (Mastodon/4.3.0; +https://mastodon.social/) Bot",
    "bluesky": "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
}
UNFURLERS = ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "SkypeUriPreview Preview/0.5")
CRAWLERS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "python-requests/2.32",
)
COUNTRIES = ("DE", "GB", "US", "PT", "FR", "NL", "ES", "IN", "BR", "CA")
REFERRERS: dict[str, str] = {
    "linkedin": "https://www.linkedin.com/",
    "xing": "https://www.xing.com/",
    "x": "https://t.co/",
    "facebook": "https://l.facebook.com/",
    "instagram": "https://l.instagram.com/",
    "mastodon": "https://mastodon.social/",
    "bluesky": "https://bsky.app/",
}
PRICES = ("49.00", "129.90", "490.00", "1290.00")
MAX_VISITS_PER_SHARE_DAY = 40  # keeps a viral post from dominating the run's length
VISIT_FADE = (0.6, 0.3, 0.1)  # a share's visits on its day and the two after


@dataclass(frozen=True)
class ContentPlan:
    key: str
    type: str
    title: str
    url: str
    tags: tuple[str, ...]
    language: str
    captions: tuple[tuple[str, str, str], ...]  # (network, language, text)
    audience_teams: tuple[str, ...] = ()
    appeal: float = 1.0  # visits relative to an average item
    lead_rate: float = 0.05  # of a unique person's visits
    apply_rate: float = 0.0  # job openings: applications, of a unique person's visits
    submitted_by: int | None = None  # an advocate's own post (index), reviewed by an editor


@dataclass(frozen=True)
class AdvocatePlan:
    id: str
    name: str
    team: str
    department: str
    location: str
    language: str
    networks: tuple[tuple[str, int], ...]  # (network, audience size)
    public_ranking: bool
    trains: bool  # acknowledges the policy and completes the course (else may not share)
    weight: float  # how much of the sharing they do; 0: trained but never shares
    personal_goal: tuple[str, int] | None  # (kind, target)

    def audience(self, network: str) -> int:
        return dict(self.networks).get(network, 0)


class Visit(StrEnum):
    PERSON = "person"  # a person's first visit to this share
    REPEAT = "repeat"  # the same person again (same browser): not a unique click
    PREFETCH = "prefetch"  # the browser prefetching the link before the person clicks
    PREVIEW = "preview"  # the network's or a chat app's bot drawing the link's card
    CRAWLER = "crawler"  # a search engine or a script
    SELF = "self"  # the advocate checking their own link


@dataclass(frozen=True)
class SharePlan:
    day: int
    advocate: int
    content: str
    network: str
    message: str


@dataclass(frozen=True)
class ClickPlan:
    day: int
    share: int
    kind: Visit
    visitor: int  # a person's number (their browser); -1 for bots and the advocate
    user_agent: str
    country: str | None
    referrer: str | None


@dataclass(frozen=True)
class ConversionPlan:
    day: int
    kind: str  # "lead", "sale", "refund" (of a sale's order), "application" or "hire"
    customer: str  # a customer, or a candidate for applications and hires
    click: int | None  # the visit it names (index into clicks); None: it names none
    amount: str | None = None
    order: str | None = None
    resent: bool = False  # the CRM sends it a second time: the API counts it once


@dataclass(frozen=True)
class KudosPlan:
    day: int
    giver: int
    receiver: int
    message: str


@dataclass(frozen=True)
class SurveyAnswer:
    day: int
    advocate: int
    nps: int
    support: int
    comment: str | None


@dataclass
class Plan:
    seed: int
    days: int
    advocates: list[AdvocatePlan]
    content: list[ContentPlan]
    shares: list[SharePlan] = field(default_factory=list)
    clicks: list[ClickPlan] = field(default_factory=list)
    conversions: list[ConversionPlan] = field(default_factory=list)
    kudos: list[KudosPlan] = field(default_factory=list)
    answers: list[SurveyAnswer] = field(default_factory=list)

    def on(self, day: int) -> DayPlan:
        return DayPlan(
            day,
            [i for i, s in enumerate(self.shares) if s.day == day],
            [i for i, c in enumerate(self.clicks) if c.day == day],
            [i for i, c in enumerate(self.conversions) if c.day == day],
            [k for k in self.kudos if k.day == day],
            [a for a in self.answers if a.day == day],
        )

    def visible(self, advocate: AdvocatePlan) -> list[ContentPlan]:
        """The published items the advocate may share (the audience rule of the content service)."""
        return [c for c in self.content if not c.audience_teams or advocate.team in c.audience_teams]


@dataclass(frozen=True)
class DayPlan:
    day: int
    shares: list[int]
    clicks: list[int]
    conversions: list[int]
    kudos: list[KudosPlan]
    answers: list[SurveyAnswer]


def _pick(rng: random.Random, weighted: tuple[tuple[str, str, float], ...]) -> tuple[str, str]:
    first, second, _ = rng.choices(weighted, weights=[w for _, _, w in weighted])[0]
    return first, second


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method; means here stay small (a day's shares or a share's visits)."""
    if mean <= 0:
        return 0
    if mean > 30:  # the normal approximation, past where exp(-mean) loses precision
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, count, product = math.exp(-mean), 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def make_advocates(rng: random.Random, count: int) -> list[AdvocatePlan]:
    advocates: list[AdvocatePlan] = []
    used: set[str] = set()
    for i in range(count):
        name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        slug = _slug(name)
        if slug in used:
            slug = f"{slug}-{i}"
        used.add(slug)
        team, department = _pick(rng, TEAMS)
        location, language = _pick(rng, LOCATIONS)
        # Log-normal audiences: a median of about 500 connections, a long tail of big accounts.
        networks = [("linkedin", int(rng.lognormvariate(math.log(500), 1.1)) + 20)]
        for network, chance, median in (
            ("x", 0.45, 300),
            ("xing", 0.5 if language == "de" else 0.0, 200),
            ("instagram", 0.2, 400),
            ("facebook", 0.2, 250),
            ("mastodon", 0.08, 150),
            ("bluesky", 0.08, 150),
        ):
            if rng.random() < chance:
                networks.append((network, int(rng.lognormvariate(math.log(median), 1.2)) + 5))
        trains = rng.random() < 0.85
        # Pareto weights: a few advocates do most of the sharing; some trained ones never share.
        weight = 0.0 if rng.random() < 0.12 else rng.paretovariate(1.16)
        goal = rng.choice((("audience", 2000), ("posts_this_quarter", 4), None, None))
        advocates.append(
            AdvocatePlan(
                id=slug,
                name=name,
                team=team,
                department=department,
                location=location,
                language=language,
                networks=tuple(networks),
                public_ranking=rng.random() >= 0.1,
                trains=trains,
                weight=weight,
                personal_goal=goal,
            )
        )
    return advocates


def _captions(text: str, networks: tuple[str, ...], language: str = "en") -> tuple[tuple[str, str, str], ...]:
    return tuple((network, language, f"{text} {DISCLOSURE}") for network in networks)


def make_content(advocates: list[AdvocatePlan]) -> list[ContentPlan]:
    """One item of every type the library has, the video captioned in English and German, one
    item for the Sales team only, and one post an advocate wrote themself."""
    site = "https://www.example.com"
    both = ("linkedin", "x", "facebook")
    items = [
        ContentPlan(
            "article",
            "article",
            "How we cut customer onboarding time in half",
            f"{site}/blog/onboarding-in-half",
            ("product", "customers"),
            "en",
            _captions("Half the onboarding time, twice the happy customers: here is how we did it.", both),
            appeal=1.0,
            lead_rate=0.06,
        ),
        ContentPlan(
            "video",
            "video",
            "Inside our new robotics lab (2 min video)",
            f"{site}/videos/robotics-lab",
            ("product", "culture"),
            "en",
            _captions("Take a two-minute tour of our new robotics lab.", ("linkedin", "x", "instagram"))
            + _captions(
                "Ein Rundgang durch unser neues Robotik-Labor in zwei Minuten.", ("linkedin", "xing"), "de"
            ),
            appeal=1.6,
            lead_rate=0.03,
        ),
        ContentPlan(
            "image",
            "image",
            "Our team at the Future of Work summit",
            f"{site}/news/future-of-work-summit",
            ("culture", "events"),
            "en",
            _captions(
                "Great days at the Future of Work summit with this team.", ("linkedin", "instagram", "x")
            ),
            appeal=0.8,
            lead_rate=0.01,
        ),
        ContentPlan(
            "job",
            "job_opening",
            "We're hiring: Senior Backend Engineer (Berlin or remote)",
            f"{site}/careers/senior-backend-engineer",
            ("hiring",),
            "en",
            _captions(
                "We are hiring a Senior Backend Engineer. Know someone great?", ("linkedin", "x", "xing")
            ),
            appeal=1.3,
            lead_rate=0.0,
            apply_rate=0.1,
        ),
        ContentPlan(
            "event",
            "event",
            "Webinar: employee advocacy that actually works",
            f"{site}/events/advocacy-webinar",
            ("events", "marketing"),
            "en",
            _captions("Join our webinar on employee advocacy that actually works.", both),
            appeal=0.9,
            lead_rate=0.08,
        ),
        ContentPlan(
            "story",
            "post",
            "Customer story: how Nordwind Logistics ships 30% faster",
            f"{site}/customers/nordwind-logistics",
            ("customers",),
            "en",
            _captions("Nordwind Logistics ships 30% faster with us. Their story:", both),
            appeal=1.1,
            lead_rate=0.07,
        ),
        ContentPlan(
            "pricing",
            "article",
            "New partner pricing for 2027",
            f"{site}/partners/pricing-2027",
            ("sales",),
            "en",
            _captions(
                "Our partner pricing for 2027 is out: simpler tiers, better margins.", ("linkedin", "xing")
            ),
            audience_teams=("Sales",),
            appeal=0.7,
            lead_rate=0.09,
        ),
    ]
    engineers = [i for i, a in enumerate(advocates) if a.team == "Engineering" and a.trains]
    author = engineers[0] if engineers else 0
    items.append(
        ContentPlan(
            "own-post",
            "post",
            "What I learned shipping our public API",
            f"{site}/blog/shipping-our-public-api",
            ("product", "engineering"),
            "en",
            _captions("Five things I learned shipping our public API.", ("linkedin", "x", "mastodon")),
            appeal=0.9,
            lead_rate=0.04,
            submitted_by=author,
        )
    )
    return items


def _message(rng: random.Random, content: ContentPlan, network: str, language: str) -> str:
    """The advocate's own words: a suggested caption (in their language where there is one),
    edited with a line of their own."""
    captions = [t for n, lang, t in content.captions if n == network and lang == language]
    captions = captions or [t for n, _, t in content.captions if n == network] or [content.captions[0][2]]
    opener = rng.choice(
        ("", "Proud of this.", "Worth a look:", "Had to share this.", "Our team did it again!")
    )
    return f"{opener} {rng.choice(captions)}".strip()


def make_plan(seed: int, advocates: int, days: int) -> Plan:
    rng = random.Random(seed)
    people = make_advocates(rng, advocates)
    plan = Plan(seed, days, people, make_content(people))
    sharers = [i for i, a in enumerate(people) if a.trains and a.weight > 0]
    weights = [people[i].weight for i in sharers]
    visitors = customers = candidates = orders = 0
    for day in range(days):
        weekend = day % 7 in (5, 6)
        # About 1.5 shares per advocate a week, fewer at weekends.
        count = _poisson(rng, len(people) * (0.07 if weekend else 0.25)) if sharers else 0
        for _ in range(count):
            who = rng.choices(sharers, weights=weights)[0]
            advocate = people[who]
            content = rng.choice(plan.visible(advocate))
            network = rng.choices(
                [n for n, _ in advocate.networks], weights=[1 + math.sqrt(a) for _, a in advocate.networks]
            )[0]
            plan.shares.append(
                SharePlan(day, who, content.key, network, _message(rng, content, network, advocate.language))
            )
    by_key = {c.key: c for c in plan.content}
    # Visits: the network's bot draws the preview at once; people come over three days.
    for index, share in enumerate(plan.shares):
        content = by_key[share.content]
        audience = people[share.advocate].audience(share.network)
        referrer = REFERRERS[share.network]
        _bot(plan, share.day, index, Visit.PREVIEW, PREVIEW_BOTS[share.network])
        if rng.random() < 0.3:
            _bot(plan, share.day, index, Visit.PREVIEW, rng.choice(UNFURLERS))
        if rng.random() < 0.1:
            _bot(plan, share.day, index, Visit.CRAWLER, rng.choice(CRAWLERS))
        if rng.random() < 0.2:
            plan.clicks.append(ClickPlan(share.day, index, Visit.SELF, -1, _browser(0), None, referrer))
        seen: list[int] = []
        for offset, fade in enumerate(VISIT_FADE):
            day = share.day + offset
            if day >= days:
                break
            mean = min(audience * CTR[share.network] * content.appeal * fade, MAX_VISITS_PER_SHARE_DAY)
            for _ in range(_poisson(rng, mean)):
                if seen and rng.random() < 0.15:
                    visitor, kind = rng.choice(seen), Visit.REPEAT
                else:
                    visitors += 1
                    visitor, kind = visitors, Visit.PERSON
                    seen.append(visitor)
                country = rng.choice(COUNTRIES)
                if kind is Visit.PERSON and rng.random() < 0.05:
                    plan.clicks.append(
                        ClickPlan(day, index, Visit.PREFETCH, visitor, _browser(visitor), country, referrer)
                    )
                plan.clicks.append(ClickPlan(day, index, kind, visitor, _browser(visitor), country, referrer))
                if kind is Visit.PERSON and rng.random() < content.lead_rate:
                    # Leads come a day or more after the visit (the demo never names a click the
                    # attribution index may not have yet), sales after the lead.
                    customers += 1
                    lead_day = day + 1 + min(int(rng.expovariate(0.7)), 4)
                    customer = f"cust-{seed}-{customers:05d}"
                    click = len(plan.clicks) - 1
                    plan.conversions.append(
                        ConversionPlan(lead_day, "lead", customer, click, resent=rng.random() < 0.08)
                    )
                    if rng.random() < 0.45:
                        sale_day = lead_day + 1 + min(int(rng.expovariate(0.5)), 5)
                        for repeat in range(2 if rng.random() < 0.25 else 1):
                            orders += 1
                            order, price = f"ord-{seed}-{orders:05d}", rng.choice(PRICES)
                            ordered_on = sale_day + repeat * rng.randint(2, 6)
                            plan.conversions.append(
                                ConversionPlan(ordered_on, "sale", customer, click, price, order)
                            )
                            if rng.random() < 0.1:  # sent back: refunded in full a few days later
                                plan.conversions.append(
                                    ConversionPlan(
                                        ordered_on + rng.randint(2, 5), "refund", customer, None, price, order
                                    )
                                )
                if kind is Visit.PERSON and content.apply_rate and rng.random() < content.apply_rate:
                    # A candidate applies through the job post's link; some are hired a week or so later
                    # (a hire names no click: the API credits it through the application).
                    candidates += 1
                    candidate = f"cand-{seed}-{candidates:05d}"
                    applied_on = day + 1 + min(int(rng.expovariate(0.7)), 3)
                    plan.conversions.append(
                        ConversionPlan(applied_on, "application", candidate, len(plan.clicks) - 1)
                    )
                    if rng.random() < 0.3:
                        plan.conversions.append(
                            ConversionPlan(applied_on + rng.randint(3, 8), "hire", candidate, None)
                        )
    # Leads that arrive with no click id (someone typed the address): counted, but credited to nobody.
    for day in range(days):
        for _ in range(_poisson(rng, 0.25)):
            customers += 1
            plan.conversions.append(ConversionPlan(day, "lead", f"cust-{seed}-{customers:05d}", None))
    plan.conversions = [c for c in plan.conversions if c.day < days]
    plan.conversions.sort(key=lambda c: c.day)  # stable: a lead before its sales, a sale before its refund
    _engagement(rng, plan)
    return plan


def _bot(plan: Plan, day: int, share: int, kind: Visit, user_agent: str) -> None:
    plan.clicks.append(ClickPlan(day, share, kind, -1, user_agent, None, None))


def _browser(visitor: int) -> str:
    """A person's browser. The demo's visitors all come from 127.0.0.1, and the redirect tells
    visitors apart by address and user agent: each gets a user agent of its own (a build number)."""
    platforms = (
        "Windows NT 10.0; Win64; x64",
        "Macintosh; Intel Mac OS X 14_5",
        "X11; Linux x86_64",
        "Linux; Android 14; Pixel 8",
    )
    platform = platforms[visitor % len(platforms)]
    mobile = " Mobile" if "Android" in platform else ""
    return (
        f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 (KHTML, like Gecko) "
        f"Chrome/131.0.{visitor}.{visitor % 97}{mobile} Safari/537.36"
    )


def _engagement(rng: random.Random, plan: Plan) -> None:
    """Kudos between colleagues (mostly teammates), and the eNPS survey in the last third."""
    people = plan.advocates
    allowance = kudos_allowance(plan.days)
    given = [0] * len(people)
    for day in range(plan.days):
        for _ in range(_poisson(rng, len(people) * 0.1)):
            giver = rng.randrange(len(people))
            if given[giver] >= allowance or len(people) < 2:
                continue
            mates = [i for i, a in enumerate(people) if a.team == people[giver].team and i != giver]
            others = [i for i in range(len(people)) if i != giver]
            receiver = rng.choice(mates if mates and rng.random() < 0.7 else others)
            given[giver] += 1
            message = rng.choice(
                (
                    "Thanks for sharing the webinar!",
                    "Great post!",
                    "Your share brought us a lead!",
                    "Thanks for the intro.",
                )
            )
            plan.kudos.append(KudosPlan(day, giver, receiver, message))
    first = plan.days - max(1, plan.days // 3)
    comments = (
        None,
        None,
        "Sharing is easy, I just need more content in German.",
        "Love seeing where my posts lead.",
        "The course was useful.",
        "Too many reminders.",
    )
    for i, advocate in enumerate(people):
        if rng.random() < 0.75:
            active = advocate.trains and advocate.weight > 0
            nps = max(0, min(10, round(rng.gauss(8.6 if active else 7.0, 1.4))))
            plan.answers.append(
                SurveyAnswer(
                    rng.randrange(first, plan.days),
                    i,
                    nps,
                    max(1, min(5, round(rng.gauss(4, 0.8)))),
                    rng.choice(comments),
                )
            )


def kudos_allowance(days: int) -> int:
    """Kudos each advocate may give in the demo's rules. The allowance is weekly in real time and
    the demo's days pass in minutes, so it is scaled to the weeks simulated."""
    return min(100, 3 * math.ceil(days / 7))

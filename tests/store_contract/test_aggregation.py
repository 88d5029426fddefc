"""Aggregation: the stages and accumulators the code uses, and the common ones it may use next.

Expected results are computed in Python from the documents inserted (random, seeded), not
written down, so a wrong answer cannot hide in the fixture.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any

import pytest
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.mongo import Document

TEAMS = ["red", "green", "blue"]


def advocates(seed: int, count: int = 300) -> list[Document]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        doc: Document = {
            "_id": f"a{i:04d}",
            "org": rng.choice(["o1", "o2"]),
            "points": rng.randrange(0, 1000),
            "tags": rng.sample(["ai", "ml", "go", "rust", "web"], rng.randrange(0, 4)),
        }
        team = rng.choice([*TEAMS, None, "missing"])
        if team != "missing":
            doc["team"] = team
        docs.append(doc)
    return docs


async def test_match_and_group_count_advocates_by_team(collection: AsyncCollection[Document]) -> None:
    # recognition ProfileStore.members_by_team: advocates with no team (null or missing) are left out.
    docs = advocates(1)
    await collection.insert_many(docs)
    expected: dict[str, int] = defaultdict(int)
    for d in docs:
        if d["org"] == "o1" and d.get("team") is not None:
            expected[d["team"]] += 1
    pipeline: list[Document] = [
        {"$match": {"org": "o1"}},  # shared/tenancy.py puts the tenant's $match first
        {"$match": {"team": {"$ne": None}}},
        {"$group": {"_id": "$team", "n": {"$sum": 1}}},
    ]
    rows = await (await collection.aggregate(pipeline)).to_list()
    assert {r["_id"]: r["n"] for r in rows} == dict(expected)


async def test_group_accumulators_sum_avg_min_max_push_add_to_set_first_last(
    collection: AsyncCollection[Document],
) -> None:
    """Available for future use (precomputed projections replace them today): per team,
    the accumulators a report or a leaderboard rebuild would want."""
    docs = [d for d in advocates(2) if d.get("team") is not None]
    await collection.insert_many(docs)
    by_team: dict[str, list[Document]] = defaultdict(list)
    for d in sorted(docs, key=lambda d: (d["points"], d["_id"])):
        by_team[d["team"]].append(d)
    expected = {
        team: {
            "total": sum(d["points"] for d in members),
            "mean": sum(d["points"] for d in members) / len(members),
            "low": min(d["points"] for d in members),
            "high": max(d["points"] for d in members),
            "ids": [d["_id"] for d in members],
            "tags": sorted({t for d in members for t in d["tags"]}),
            "first": members[0]["_id"],
            "last": members[-1]["_id"],
        }
        for team, members in by_team.items()
    }
    pipeline: list[Document] = [
        {"$sort": {"points": 1, "_id": 1}},
        {"$unwind": {"path": "$tags", "preserveNullAndEmptyArrays": True}},
        {
            "$group": {
                "_id": {"team": "$team", "advocate": "$_id"},
                "points": {"$first": "$points"},
                "tags": {"$addToSet": "$tags"},
            }
        },
        {"$sort": {"points": 1, "_id.advocate": 1}},
        {
            "$group": {
                "_id": "$_id.team",
                "total": {"$sum": "$points"},
                "mean": {"$avg": "$points"},
                "low": {"$min": "$points"},
                "high": {"$max": "$points"},
                "ids": {"$push": "$_id.advocate"},
                "tags": {"$push": "$tags"},
                "first": {"$first": "$_id.advocate"},
                "last": {"$last": "$_id.advocate"},
            }
        },
    ]
    rows = await (await collection.aggregate(pipeline)).to_list()
    got: dict[str, Any] = {}
    for r in rows:
        team = r.pop("_id")
        r["tags"] = sorted({t for tags in r["tags"] for t in tags})
        got[team] = r
    assert got.keys() == expected.keys()
    for team, want in expected.items():
        assert got[team]["mean"] == pytest.approx(want.pop("mean"))
        assert {k: v for k, v in got[team].items() if k != "mean"} == want


async def test_sort_limit_and_project_give_the_top_entries(collection: AsyncCollection[Document]) -> None:
    """Available for future use: a top-N read done by the server."""
    docs = advocates(3)
    await collection.insert_many(docs)
    top = sorted((d for d in docs if d["org"] == "o2"), key=lambda d: (-d["points"], d["_id"]))[:10]
    pipeline: list[Document] = [
        {"$match": {"org": "o2"}},
        {"$sort": {"points": -1, "_id": 1}},
        {"$limit": 10},
        {"$project": {"_id": 0, "advocate": "$_id", "points": 1}},
    ]
    rows = await (await collection.aggregate(pipeline)).to_list()
    assert rows == [{"points": d["points"], "advocate": d["_id"]} for d in top]


async def test_lookup_joins_documents_of_another_collection(db: AsyncDatabase[Document]) -> None:
    """Available for future use (within one service's database: services never read each
    other's collections)."""
    rng = random.Random(4)
    rewards = db["contract_lookup_rewards"]
    redemptions = db["contract_lookup_redemptions"]
    reward_docs = [{"_id": f"r{i}", "title": f"Reward {i}", "price": rng.randrange(100)} for i in range(10)]
    redemption_docs = [{"_id": f"x{i:03d}", "reward_id": f"r{rng.randrange(12)}"} for i in range(60)]
    await rewards.insert_many(reward_docs)
    await redemptions.insert_many(redemption_docs)
    by_id = {r["_id"]: r for r in reward_docs}
    pipeline: list[Document] = [
        {"$sort": {"_id": 1}},
        {"$lookup": {"from": rewards.name, "localField": "reward_id", "foreignField": "_id", "as": "reward"}},
    ]
    rows = await (await redemptions.aggregate(pipeline)).to_list()
    assert rows == [
        {**d, "reward": [by_id[d["reward_id"]]] if d["reward_id"] in by_id else []} for d in redemption_docs
    ]
    await rewards.drop()
    await redemptions.drop()

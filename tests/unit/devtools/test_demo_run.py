"""What the demo expects recognition to count, from the conversions API's answers."""

from __future__ import annotations

from collections import Counter
from typing import Any

from devtools.demo.run import count_credit


def answer(advocate_id: str | None) -> dict[str, Any]:
    return {"attributed": advocate_id is not None, "advocate_id": advocate_id}


def test_each_scored_conversion_counts_once_for_the_advocate_it_is_attributed_to() -> None:
    credited: Counter[tuple[str, str]] = Counter()
    for kind in ("lead", "sale", "application", "hire"):
        count_credit(credited, kind, answer("ana"))
    count_credit(credited, "lead", answer(None))  # nobody's: recognition scores no one
    assert credited == {("ana", "lead"): 1, ("ana", "sale"): 1, ("ana", "application"): 1, ("ana", "hire"): 1}


def test_a_refund_takes_back_the_sale_it_refunds() -> None:
    # Recognition reverses a sale refunded in full, and its sales counter with it; the demo's
    # refunds are all in full. Expecting the sale still counted kept the demo waiting forever.
    credited: Counter[tuple[str, str]] = Counter()
    count_credit(credited, "sale", answer("ana"))
    count_credit(credited, "sale", answer("ana"))
    count_credit(credited, "refund", answer("ana"))
    count_credit(credited, "refund", answer(None))  # an unattributed refund: no sale of anyone's
    assert credited[("ana", "sale")] == 1

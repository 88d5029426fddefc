"""Decoding a poll of clicks as the whole event against as the view the projector reads.

The projector decodes every click (see bench/pipeline/README.md); this measures what reading
them as `CountedClick` instead of `ClickRecorded` saves, in one process, the two alternating over
the same records (the machine's speed moves from minute to minute; neighbours compare well).
Each round decodes one poll's worth (`--poll`, the service's MAX_BATCH) and keeps it alive until
the poll is done, as the consumer runner does.

Run: .venv/bin/python -m bench.pipeline.decode
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

from bench.pipeline.bench import ClickFactory
from services.metrics.handlers import MAX_BATCH, PROJECTED_AS
from shared.app import tune_gc
from shared.events import EventData, decode


def decode_poll(values: list[bytes], read_as: tuple[type[EventData], ...]) -> float:
    """CPU seconds per event to decode the poll and free it."""
    started = time.process_time()
    events = [decode(value, "chorus.click.recorded", read_as) for value in values]
    del events
    return (time.process_time() - started) / len(values)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--poll", type=int, default=MAX_BATCH)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    factory = ClickFactory("bench-org")
    now = datetime.now(UTC)
    values = [factory.make(i, now)[1] for i in range(args.poll)]
    tune_gc()  # as the service does
    whole: list[float] = []
    view: list[float] = []
    for _ in range(args.rounds):
        whole.append(decode_poll(values, ()))
        view.append(decode_poll(values, PROJECTED_AS))
    ratios = [v / w for v, w in zip(view, whole, strict=True)]
    print(
        f"{args.poll:,} clicks a poll, {args.rounds} alternating rounds:"
        f" whole event {statistics.median(whole) * 1e6:.2f} us/event,"
        f" as {PROJECTED_AS[0].__name__} {statistics.median(view) * 1e6:.2f} us/event;"
        f" median ratio view/whole {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()

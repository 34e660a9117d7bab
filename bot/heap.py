"""The garbage collector set for a process that keeps many answers in flight at once."""

from __future__ import annotations

import gc

# CPython runs a young collection every 700 net allocations. Each answer in flight holds a few
# hundred live objects (coroutines, buffers, parser state) that survive those collections, get
# promoted, and soon trigger full collections that walk every object the bot holds. With 1,000
# answers streaming (bench_flood) that was 3.0 s of 10.3 s CPU and single pauses of 305 ms;
# with young collections every 10,000 allocations, 1.1 s and 120 ms, and no full collection
# while the answers stream. The young generation stays small (a few MB at most).
YOUNG_THRESHOLD = 10_000
# Every young collection moves its survivors (mostly the state of answers still in flight) to
# the middle generation, and CPython collects that one every 10 young collections: a walk over
# every answer's objects, 75-90 ms at 1,000 answers, five times in the benchmark's run. Every
# 100 young collections (a million allocations) it came no more during the run; the cost is
# cyclic garbage waiting longer in the middle generation (peak RSS +0-5 MB at 1,000 answers).
MIDDLE_THRESHOLD = 100


def settle() -> None:
    """Call once start-up is done: what it built lives for the whole run, so it is moved out of
    the collector's sight (gc.freeze), and collections are spaced as above."""
    gc.freeze()
    old = gc.get_threshold()[2]
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, old)

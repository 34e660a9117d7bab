"""Where the first text of each answer spends its time, from one run of the flood benchmark.

    BENCH_TRACE=/tmp/trace.json uv run python bench/bench_flood.py --only 4 --policy ours \
        --dump /tmp/run
    uv run python -m bench.flood.firsttext /tmp/run/4-ours.json /tmp/trace.json

Four legs, on the one monotonic clock the three processes share:
  - the model writes the first token (fake LLM) -> the bot reads it (AnswerStream.push);
  - read -> the Bot API call carrying it starts (bot's session middleware);
  - call start -> the fake Bot API receives it; within that, the wait for a pooled connection;
  - the whole call, as the bot sees it.
"""

from __future__ import annotations

import bisect
import json
import sys
from typing import Any


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


def legs(run: dict[str, Any], trace: dict[str, Any]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"token -> read": [], "read -> call": [],
                                   "call -> Telegram": [], "  of it, pool wait": [],
                                   "whole call": []}
    connects = sorted(trace["connects"])
    starts = [c[0] for c in connects]
    for chat_id, chat in run["chats"].items():
        shown = [c for c in chat["calls"] if c[2] and c[4] > 0]
        if not shown or chat_id not in trace["read"] or chat_id not in trace["sent"]:
            continue
        read = trace["read"][chat_id]
        start, end = trace["sent"][chat_id]
        out["token -> read"].append(read - chat["first_token"])
        out["read -> call"].append(start - read)
        out["call -> Telegram"].append(shown[0][0] - start)
        out["whole call"].append(end - start)
        i = bisect.bisect_left(starts, start - 1e-4)  # its own connect() began with the call
        if i < len(connects) and connects[i][0] - start < 0.01:
            out["  of it, pool wait"].append(connects[i][1])
    return out


def main(dump: str, trace_path: str) -> None:
    with open(dump) as f:
        run = json.load(f)
    with open(trace_path) as f:
        trace = json.load(f)
    found = legs(run, trace)
    print(f"{len(found['whole call'])} answers' first text, ms:")
    for name, values in found.items():
        ms = [v * 1000 for v in values]
        print(f"  {name:<20} p50 {pct(ms, .5):6.0f}   p90 {pct(ms, .9):6.0f}   "
              f"max {max(ms, default=float('nan')):6.0f}")


if __name__ == "__main__":
    main(*sys.argv[1:3])

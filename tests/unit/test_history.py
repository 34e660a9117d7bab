"""What the model sees: system prompt always, newest turns within the budget."""

from __future__ import annotations

from bot.services.history import build_messages, estimate_tokens
from bot.storage import Turn


def turns(n: int, size: int = 350) -> list[Turn]:
    return [Turn("user" if i % 2 == 0 else "assistant", f"{i:03d}" + "x" * size) for i in range(n)]


def test_system_prompt_always_kept_and_oldest_turns_dropped_first() -> None:
    history = turns(40)
    msgs = build_messages("SYS", history, max_tokens=1000, max_messages=100)
    assert msgs[0] == {"role": "system", "content": "SYS"}
    kept = [m["content"][:3] for m in msgs[1:]]
    assert kept == sorted(kept) and kept[-1] == "039"  # newest kept, order preserved
    assert sum(estimate_tokens(m["content"]) for m in msgs) <= 1000
    assert msgs[1]["role"] == "user"  # never opens with an orphaned assistant turn


def test_message_cap_applies_before_the_token_budget() -> None:
    msgs = build_messages("S", turns(40, size=5), max_tokens=100_000, max_messages=6)
    assert len(msgs) == 1 + 6


def test_reported_usage_beats_the_estimate() -> None:
    history = [Turn("user", "q"), Turn("assistant", "short", tokens=5000), Turn("user", "now")]
    msgs = build_messages("S", history, max_tokens=1000, max_messages=10)
    assert [m["content"] for m in msgs[1:]] == ["now"]


def test_the_newest_turn_is_sent_even_when_alone_over_budget() -> None:
    msgs = build_messages("S", [Turn("user", "y" * 100_000)], max_tokens=500, max_messages=10)
    assert msgs[-1]["content"].startswith("yyy")


def test_group_turns_are_attributed() -> None:
    msgs = build_messages("S", [Turn("user", "hi", name="Ann")], max_tokens=500, max_messages=5)
    assert msgs[-1]["content"] == "Ann: hi"

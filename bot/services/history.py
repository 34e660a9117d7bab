"""What the model sees: the system prompt plus as many recent turns as the budget allows."""

from __future__ import annotations

from typing import Any

from bot.storage import Turn

# ~4 characters per token for English, fewer for other scripts: err on the side of counting more.
CHARS_PER_TOKEN = 3.5
PER_MESSAGE_OVERHEAD = 4


def estimate_tokens(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN) + PER_MESSAGE_OVERHEAD


def turn_tokens(turn: Turn) -> int:
    return turn.tokens if turn.tokens is not None else estimate_tokens(turn.content)


def build_messages(
    system_prompt: str, turns: list[Turn], *, max_tokens: int, max_messages: int
) -> list[dict[str, Any]]:
    """Newest turns first until the budget is spent; the system prompt is always kept."""
    budget = max_tokens - estimate_tokens(system_prompt)
    kept: list[Turn] = []
    for turn in reversed(turns[-max_messages:]):
        cost = turn_tokens(turn)
        if kept and cost > budget:
            break
        budget -= cost
        kept.append(turn)
    kept.reverse()
    # A conversation should not open with an orphaned assistant turn.
    while kept and kept[0].role == "assistant":
        kept.pop(0)
    messages: list[dict[str, Any]] = []
    if system_prompt:
        messages.append({"role": "system", "content": system_prompt})
    for turn in kept:
        attributed = turn.name and turn.role == "user"
        content = f"{turn.name}: {turn.content}" if attributed else turn.content
        messages.append({"role": turn.role, "content": content})
    return messages

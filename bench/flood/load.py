"""The load both policies get: who asks, what the fake LLM answers, which limits apply.

Shared by the three processes of the flood benchmark (orchestrator, fakes, bot).
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass

TOKEN = "42:BENCH-TOKEN-abcdefghijklmnopqrstuvwxyz"
BOT_USERNAME = "testbot"
TOKENS_PER_SECOND = 40.0
TTFT = 0.3
GROUP_USER_BASE = 500_000  # the user who asks in group chat -n is GROUP_USER_BASE + n
CURSORS = " ▌▉"  # ours, the baseline's; never counted as visible text
# Markdown in the answers (read by all three processes; the orchestrator's environment is theirs).
FORMATTED = os.environ.get("BENCH_FORMATTED") == "1"

_WORDS = [
    "the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "streaming",
    "text", "arrives", "token", "by", "token", "from", "a", "model", "that", "writes", "plain",
    "sentences", "about", "limits", "budgets", "and", "messages", "in", "chats",
]
_ASK = re.compile(r"q(-?\d+)n(\d+)")


@dataclass(frozen=True)
class Chat:
    chat_id: int
    group: bool

    @property
    def user_id(self) -> int:
        return GROUP_USER_BASE - self.chat_id if self.group else self.chat_id


@dataclass(frozen=True)
class Scenario:
    name: str
    private: int
    groups: int
    tokens: int  # per answer
    timeout: float  # seconds for the whole run, answers and finals

    @property
    def chats(self) -> list[Chat]:
        return ([Chat(1001 + i, False) for i in range(self.private)]
                + [Chat(-(2001 + i), True) for i in range(self.groups)])


SCENARIOS = [
    Scenario("1 private chat", private=1, groups=0, tokens=600, timeout=45),
    Scenario("1 group", private=0, groups=1, tokens=600, timeout=60),
    Scenario("200 chats (150 private, 50 groups)", private=150, groups=50, tokens=300,
             timeout=60),
    Scenario("1,000 private chats", private=1000, groups=0, tokens=160, timeout=75),
    # Not in the issue: where one bot process stops keeping up (see bench/RESULTS.md).
    Scenario("100 private chats", private=100, groups=0, tokens=300, timeout=45),
    Scenario("500 private chats", private=500, groups=0, tokens=160, timeout=60),
]


def question(chat: Chat, tokens: int) -> str:
    ask = f"q{chat.chat_id}n{tokens}"
    return f"@{BOT_USERNAME} {ask}" if chat.group else ask


def parse_question(text: str) -> tuple[int, int] | None:
    """(chat_id, tokens) from a user message as the LLM sees it (groups prefix the author)."""
    found = _ASK.search(text)
    return (int(found.group(1)), int(found.group(2))) if found else None


def answer_tokens(chat_id: int, tokens: int) -> list[str]:
    """A deterministic answer, one word (about 4-5 characters) per token. Plain text, or with
    `BENCH_FORMATTED=1` Markdown as models write it: one word in ten bold, one in ten code."""
    rng = random.Random(chat_id)
    out = []
    for i in range(tokens):
        word = rng.choice(_WORDS)
        if FORMATTED and i % 10 == 3:
            word = f"**{word}**"
        elif FORMATTED and i % 10 == 7:
            word = f"`{word}`"
        out.append(word + (".\n\n" if i % 40 == 39 else " "))
    out[-1] = out[-1].rstrip() + "."
    return out


def final_text(chat_id: int, tokens: int) -> str:
    return "".join(answer_tokens(chat_id, tokens)).strip()


def visible(text: str) -> str:
    return text.rstrip().rstrip(CURSORS).rstrip()


def unmarked(text: str) -> str:
    """The text without its Markdown markers: ours sends the answer rendered (entities), the
    baseline as the model wrote it."""
    return text.replace("**", "").replace("`", "") if FORMATTED else text

"""Latency of the streaming spine, end to end on loopback.

Streams 20 answers (40 tokens/s, 300 ms to first token) through the real app against the fake
Bot API and fake LLM, and prints the medians of:
  first token → first Telegram call carrying text
  last token  → the final sendMessage / edit
for the draft path (DMs) and the edit path (drafts refused).

    uv run python bench/bench_spine.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.logs import setup_logging
from tests.e2e.harness import USER, running_bot
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

ANSWERS = 20
TOKENS = 60


class TimedLLM(FakeLLM):
    """Remembers when each content delta is written (same loop clock as the fake Bot API)."""

    def __init__(self) -> None:
        super().__init__(chunk_chars=5, ttft=0.3, tokens_per_second=40)
        self.marks: list[float] = []

    async def _pace(self, sent: int) -> None:
        await super()._pace(sent)
        if sent == 0:
            self.marks.clear()
        self.marks.append(asyncio.get_running_loop().time())


async def run(path: str, same_chat: bool) -> tuple[list[float], list[float], float]:
    first, last = [], []
    frames = 0
    async with FakeTelegram(token="42:TEST-TOKEN-abcdefghijklmnopqrstuvwxyz") as tg, \
            TimedLLM() as llm, running_bot(tg, llm, allowed_user_ids="*"):
        tg.refuse_drafts = path == "edit"
        for n in range(ANSWERS):
            answer = " ".join(f"w{n}x{i}" for i in range(TOKENS // 2))
            llm.reply(answer)
            start = len(tg.calls)
            user = USER if same_chat else USER + n
            tg.private_text(user, f"question {n}")

            def final_seen(calls: list, answer: str = answer, start: int = start) -> bool:  # type: ignore[type-arg]
                return any(c.ok and c.params.get("text") == answer
                           and c.method in ("sendMessage", "editMessageText")
                           for c in calls[start:])

            await tg.wait_for(final_seen, timeout=30)
            calls = tg.calls[start:]
            text_calls = [c for c in calls if c.ok and c.params.get("text")
                          and c.method in ("sendMessageDraft", "sendMessage", "editMessageText")]
            final = next(c for c in calls if c.ok and c.params.get("text") == answer
                         and c.method in ("sendMessage", "editMessageText"))
            first.append((text_calls[0].at - llm.marks[0]) * 1000)
            last.append((final.at - llm.marks[-1]) * 1000)
            frames += len(text_calls)
    return first, last, frames / ANSWERS


def main() -> None:
    setup_logging("WARNING", "console")
    print(f"{ANSWERS} answers of {TOKENS} tokens at 40 tokens/s, 300 ms to first token\n")
    print(f"{'path':<8}{'chats':<26}{'first token → first text':>26}"
          f"{'last token → final':>20}{'frames/answer':>15}")
    for path in ("draft", "edit"):
        for same_chat in (False, True):
            first, last, frames = asyncio.run(run(path, same_chat))
            chats = "1 chat, back to back" if same_chat else "20 chats, one answer each"
            print(f"{path:<8}{chats:<26}{statistics.median(first):>23.1f} ms"
                  f"{statistics.median(last):>17.1f} ms{frames:>15.1f}")
    print("\nmedians; back to back, the chat's budget (1 message/s, drafts 40/30 s) paces frames")


if __name__ == "__main__":
    main()

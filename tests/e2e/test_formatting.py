"""Formatted, split answers through the fake Bot API, which validates entities like Telegram."""

from __future__ import annotations

from bot.render import MarkdownStream
from tests.e2e.harness import USER, harness


def long_answer() -> str:
    para = ("Streaming **bold** text with `inline code`, _italics_ and a [link](https://e.com). "
            "Emoji 🎉 and 中文 and العربية keep offsets honest. ")
    code = "\n".join(f"    value_{i} = compute({i})  # 🧮 line {i}" for i in range(120))
    parts = [para * 6 for _ in range(4)]
    return ("## Overview\n\n" + "\n\n".join(parts) + "\n\n```python\ndef main():\n" + code
            + "\n```\n\n" + "\n\n".join(parts) + "\n\nDone.")


async def test_long_formatted_answer_arrives_complete_in_several_messages() -> None:
    answer = long_answer()
    assert len(answer) > 10_000
    async with harness() as h:
        h.llm.reply(answer, chunk_chars=23)
        h.tg.private_text(USER, "write a lot")
        await h.tg.wait_for(lambda c: any(x.method == "sendMessage" and "Done." in
                                          (x.params.get("text") or "") for x in c), timeout=30)
        await h.idle()
        sends = [c for c in h.tg.calls_to("sendMessage") if c.ok]
        assert len(sends) >= 3
        assert all(c.ok for c in h.tg.calls if c.method != "getUpdates")  # no entity rejected
        expected = MarkdownStream()
        expected.feed(answer)
        pages = expected.finish()
        assert [c.params["text"] for c in sends] == [p.text for p in pages]
        joined = "".join(c.params["text"] for c in sends)
        assert "**" not in joined and "```" not in joined
        assert joined.count("value_") == 120
        # the code block crossing a cut is reopened as `pre` with its language
        pre = [e for c in sends for e in (c.params.get("entities") or []) if e["type"] == "pre"]
        assert len(pre) >= 2 and all(e.get("language") == "python" for e in pre)


async def test_frames_never_show_raw_markdown() -> None:
    answer = "Here is **bold text that takes a while** and a fence:\n\n```js\nlet x = 1;\n```\nEnd."
    async with harness() as h:
        h.llm.reply(answer, chunk_chars=3)
        h.tg.private_text(USER, "go")
        await h.finals(USER, 1)
        frames = [c.params.get("text") or "" for c in h.tg.calls_to("sendMessageDraft")]
        assert frames and not any("**" in f or "```" in f for f in frames)
        final = h.tg.calls_to("sendMessage")[-1].params
        assert {e["type"] for e in final["entities"]} >= {"bold", "pre"}


async def test_reasoning_is_kept_apart_and_collapsed_above_the_answer() -> None:
    from tests.fakes.llm import Reasoning

    async with harness() as h:
        h.llm.script([Reasoning("Let me think "), Reasoning("about it."), "The answer is 4."])
        h.tg.private_text(USER, "2+2?")
        texts = await h.finals(USER, 1)
        assert texts[0].endswith("The answer is 4.") and "Let me think about it." in texts[0]
        final = h.tg.calls_to("sendMessage")[-1].params
        assert any(e["type"] == "expandable_blockquote" for e in final["entities"])
        drafts = [c.params.get("text") or "" for c in h.tg.calls_to("sendMessageDraft")]
        assert not any("Let me think" in d for d in drafts)  # thinking never streams as answer
        # history keeps only the answer
        h.llm.reply("ok")
        h.tg.private_text(USER, "thanks")
        await h.finals(USER, 2)
        assert h.llm.requests[-1]["messages"][2]["content"] == "The answer is 4."


async def test_inline_think_tags_are_hidden_when_asked() -> None:
    async with harness(reasoning_display="hidden") as h:
        h.llm.reply("<think>private musing</think>Visible answer.", chunk_chars=4)
        h.tg.private_text(USER, "q")
        texts = await h.finals(USER, 1)
        assert texts == ["Visible answer."]

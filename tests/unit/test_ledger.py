"""MessageLedger: which ids may hold the copy of a send whose answer was lost, and when probing
them is safe. A real Bot on JsonSession with the ledger installed, against the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError, TelegramServerError

from bot.transport.jsonsession import JsonSession
from bot.transport.ledger import MAX_PROBES, Content, MessageLedger
from tests.fakes.telegram import FakeTelegram

CHAT = 777


@pytest.fixture
async def rig() -> AsyncIterator[tuple[FakeTelegram, Bot, MessageLedger]]:
    async with FakeTelegram() as tg:
        session = JsonSession(api=TelegramAPIServer.from_base(tg.base_url), timeout=5)
        bot = Bot(tg.token, session=session, default=DefaultBotProperties(parse_mode=None))
        ledger = MessageLedger()
        session.middleware(ledger)
        try:
            yield tg, bot, ledger
        finally:
            await bot.session.close()


async def asked(tg: FakeTelegram, ledger: MessageLedger, text: str = "question") -> int:
    """A user's message the bot has seen (as Outbound records the question it answers)."""
    message_id = int(tg.private_text(CHAT, text)["message"]["message_id"])
    ledger.saw(CHAT, message_id)
    return message_id


async def lost_send(tg: FakeTelegram, bot: Bot, text: str, **kwargs: object) -> None:
    tg.lose_next_response("sendMessage")
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, text, **kwargs)  # type: ignore[arg-type]


async def test_a_lost_copy_is_the_one_unknown_id_before_the_retry(rig: tuple) -> None:
    tg, bot, ledger = rig
    question = await asked(tg, ledger)
    await lost_send(tg, bot, "answer")
    retry = await bot.send_message(CHAT, "answer")
    probe = ledger.settle(CHAT, retry.message_id)
    assert probe is not None
    assert probe.candidates == (question + 1,) and retry.message_id == question + 2
    assert probe.content == Content("answer") and probe.copies == 1
    assert ledger.settle(CHAT, retry.message_id) is None  # settled once, then forgotten


async def test_a_retry_that_took_the_next_id_proves_nothing_landed(rig: tuple) -> None:
    tg, bot, ledger = rig
    await asked(tg, ledger)
    tg.fail_next("sendMessage", 502, "Bad Gateway")  # refused before any message was made
    with pytest.raises(TelegramServerError):
        await bot.send_message(CHAT, "answer")
    retry = await bot.send_message(CHAT, "answer")
    assert ledger.settle(CHAT, retry.message_id) is None


async def test_ids_the_bot_got_back_are_never_candidates(rig: tuple) -> None:
    tg, bot, ledger = rig
    await asked(tg, ledger)
    await lost_send(tg, bot, "answer")
    known = [(await bot.send_message(CHAT, f"other {i}")).message_id for i in range(2)]
    for _ in range(MAX_PROBES + 2):
        tg.private_text(CHAT, "the user types on")  # unknown ids: probed, at most MAX_PROBES
    retry = await bot.send_message(CHAT, "answer")
    probe = ledger.settle(CHAT, retry.message_id)
    assert probe is not None and len(probe.candidates) == MAX_PROBES
    assert not set(known) & set(probe.candidates)
    assert probe.candidates[0] == known[0] - 1  # the lost attempt's id comes first


async def test_lost_sends_of_different_contents_are_not_probed(rig: tuple) -> None:
    # Probing one content at the other's copy would overwrite it: both are left as they are.
    tg, bot, ledger = rig
    await asked(tg, ledger)
    await lost_send(tg, bot, "first answer")
    await lost_send(tg, bot, "second answer")
    retry = await bot.send_message(CHAT, "second answer")
    assert ledger.settle(CHAT, retry.message_id) is None


async def test_repeated_attempts_of_one_content_are_probed_together(rig: tuple) -> None:
    tg, bot, ledger = rig
    question = await asked(tg, ledger)
    await lost_send(tg, bot, "answer")
    await lost_send(tg, bot, "answer")
    retry = await bot.send_message(CHAT, "answer")
    probe = ledger.settle(CHAT, retry.message_id)
    assert probe is not None and probe.copies == 2
    assert probe.candidates == (question + 1, question + 2)


async def test_a_lost_reply_in_html_makes_probing_unsafe(rig: tuple) -> None:
    # A handler reply with parse_mode shows other text than it sent, so its copy cannot be
    # recognised, and a probe with the answer's content could land on it.
    tg, bot, ledger = rig
    await asked(tg, ledger)
    await lost_send(tg, bot, "<b>help</b>", parse_mode="HTML")
    await lost_send(tg, bot, "answer")
    retry = await bot.send_message(CHAT, "answer")
    assert ledger.settle(CHAT, retry.message_id) is None


async def test_drafts_and_chat_actions_make_no_message(rig: tuple) -> None:
    tg, bot, ledger = rig
    await asked(tg, ledger)
    for method in ("sendMessageDraft", "sendChatAction"):
        tg.lose_next_response(method)
    with pytest.raises(TelegramNetworkError):
        await bot.send_message_draft(CHAT, draft_id=1, text="partial")
    with pytest.raises(TelegramNetworkError):
        await bot.send_chat_action(CHAT, "typing")
    tg.private_text(CHAT, "an unknown id before the next send")
    sent = await bot.send_message(CHAT, "answer")
    assert ledger.settle(CHAT, sent.message_id) is None


async def test_without_a_known_id_in_the_chat_nothing_is_probed(rig: tuple) -> None:
    # Every id below the retry could be an older message of the bot's: none is a candidate.
    tg, bot, _ = rig
    fresh = MessageLedger()
    bot.session.middleware(fresh)
    await lost_send(tg, bot, "answer")
    retry = await bot.send_message(CHAT, "answer")
    assert fresh.settle(CHAT, retry.message_id) is None

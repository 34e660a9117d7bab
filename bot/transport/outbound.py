"""Bot API calls for one answer's frames, each through the chat's outbound budget.

Telegram errors are matched narrowly and turned into the few outcomes the manager acts on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramServerError,
)
from aiogram.methods import DeleteMessage, EditMessageText, SendMessage, SendMessageDraft
from aiogram.types import InlineKeyboardMarkup, ReplyParameters

from bot.clock import Clock
from bot.render import Rendered

from .ledger import Content, MessageLedger, Probe
from .limits import CallKind
from .scheduler import OutboundScheduler, Priority
from .target import ChatTarget

log = structlog.get_logger(__name__)
T = TypeVar("T")

FINAL_NETWORK_ATTEMPTS = 4


class ChatUnavailable(Exception):
    """403: the bot was blocked or removed; nothing more goes to this chat (or the answer's
    forum topic is gone: nothing more goes to that topic)."""


# What Telegram says to a call into a forum topic that was deleted, or closed to the bot.
_TOPIC_GONE = ("message thread not found", "topic_deleted", "topic_closed")


class ChatMigrated(Exception):
    """The group became a supergroup (an admin changed a setting that needs one): the call must
    go to `chat_id` instead. Telegram moves the group's history there, with new message ids."""

    def __init__(self, chat_id: int) -> None:
        super().__init__(f"the group is now the supergroup {chat_id}")
        self.chat_id = chat_id


class DraftRefused(Exception):
    """sendMessageDraft was refused (not a private chat, old server, method unavailable)."""


class MessageGone(Exception):
    """The message to edit is gone or can no longer be edited; continue in a new one."""


def _entities(r: Rendered) -> Any:  # list[dict] | None, where aiogram types list[MessageEntity]
    # As the Bot API's own dicts, in methods built without validation (`model_construct`; every
    # value here is ours and already well-typed). aiogram validates each MessageEntity in Python
    # (~5 µs), and a Markdown-rich frame carries dozens: 48 entities cost ~450 µs of CPU per
    # call, validated and then walked again to be sent (`jsonsession.py`), ~90 µs now.
    return [e.to_api() for e in r.entities] or None


def _is(exc: TelegramBadRequest, *needles: str) -> bool:
    text = exc.message.lower()
    return any(n in text for n in needles)


def topic_gone(exc: BaseException) -> bool:
    """Telegram refused a call into a forum topic that was deleted (or closed to the bot)."""
    return isinstance(exc, TelegramBadRequest) and _is(exc, *_TOPIC_GONE)


class Outbound:
    def __init__(self, bot: Bot, scheduler: OutboundScheduler, clock: Clock,
                 ledger: MessageLedger | None = None) -> None:
        """`ledger`: installed on the bot's session, it lets a send whose answer was lost be
        settled once a later one lands (see `ledger.py`)."""
        self._bot = bot
        self._scheduler = scheduler
        self._clock = clock
        self._ledger = ledger

    @property
    def busy(self) -> bool:
        return self._scheduler.busy

    def frame_wait(self, target: ChatTarget, kind: CallKind, *, shed: bool = True) -> float:
        """Seconds until the chat could take an interim frame (0: now)."""
        return self._scheduler.interim_wait(target.chat_id, kind, shed=shed)

    async def _call(
        self, target: ChatTarget, kind: CallKind, priority: Priority,
        send: Callable[[], Awaitable[T]], *, shed: bool = True,
    ) -> T:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._scheduler.call(
                    target.chat_id, send, kind=kind, priority=priority, group=target.group,
                    shed=shed,
                )
            except TelegramForbiddenError as exc:
                raise ChatUnavailable(exc.message) from exc
            except TelegramBadRequest as exc:
                if target.thread_id is not None and topic_gone(exc):
                    # Deleted (or closed) mid-answer: nothing sent there can arrive, and the
                    # General topic is not where the user asked.
                    raise ChatUnavailable(exc.message) from exc
                raise
            except TelegramMigrateToChat as exc:
                raise ChatMigrated(exc.migrate_to_chat_id) from exc
            except (TelegramServerError, TelegramNetworkError) as exc:
                # Interim frames are cheap to lose (newer text follows); finals are not.
                if priority is Priority.INTERIM or attempt >= FINAL_NETWORK_ATTEMPTS:
                    raise
                log.warning("telegram.retry", error=str(exc), attempt=attempt)
                await self._clock.sleep(0.5 * 2 ** (attempt - 1))

    async def _with_plain_fallback(
        self, rendered: Rendered, attempt: Callable[[Rendered], Awaitable[T]],
        on_plain: Callable[[], None] | None = None,
    ) -> T:
        try:
            return await attempt(rendered)
        except TelegramBadRequest as exc:
            if not rendered.entities or not _is(exc, "can't parse entities", "entity"):
                raise
            # Entities are built to be valid; if Telegram still disagrees, the text matters more.
            log.warning("telegram.entities_rejected", error=exc.message)
            if on_plain is not None:
                on_plain()
            return await attempt(Rendered(rendered.text))

    async def draft(
        self, target: ChatTarget, draft_id: int, rendered: Rendered | None, *, can_stop: bool,
        on_send: Callable[[], None] | None = None, shed: bool = True,
        on_plain: Callable[[], None] | None = None,
    ) -> None:
        """`on_plain`: called when Telegram rejected the entities and the text goes plain."""
        async def attempt(r: Rendered | None) -> None:
            async def send() -> Any:
                if on_send:
                    on_send()
                return await self._bot(SendMessageDraft.model_construct(
                    chat_id=target.chat_id, draft_id=draft_id,
                    message_thread_id=target.thread_id,
                    text=r.text if r else "", entities=_entities(r) if r else None,
                    parse_mode=None, can_stop=can_stop or None,
                ))
            await self._call(target, CallKind.DRAFT, Priority.INTERIM, send, shed=shed)

        try:
            if rendered is None:
                await attempt(None)
            else:
                await self._with_plain_fallback(rendered, attempt, on_plain)
        except TelegramBadRequest as exc:
            raise DraftRefused(exc.message) from exc

    async def send(
        self, target: ChatTarget, rendered: Rendered, *, priority: Priority,
        markup: InlineKeyboardMarkup | None = None, reply: bool = False,
        on_send: Callable[[], None] | None = None, shed: bool = True,
        on_plain: Callable[[], None] | None = None,
    ) -> int:
        reply_params = (
            ReplyParameters(message_id=target.reply_to, allow_sending_without_reply=True)
            if reply and target.reply_to else None
        )

        async def attempt(r: Rendered) -> int:
            async def send() -> int:
                if on_send:
                    on_send()
                msg = await self._bot(SendMessage.model_construct(
                    chat_id=target.chat_id, text=r.text, entities=_entities(r),
                    message_thread_id=target.thread_id, parse_mode=None,
                    reply_parameters=reply_params, reply_markup=markup,
                    link_preview_options=None,
                ))
                return msg.message_id
            return await self._call(target, CallKind.MESSAGE, priority, send, shed=shed)

        if self._ledger is not None and target.asked:
            self._ledger.saw(target.chat_id, target.asked)
        message_id = await self._with_plain_fallback(rendered, attempt, on_plain)
        if self._ledger is not None:
            probe = self._ledger.settle(target.chat_id, message_id)
            if probe is not None:
                await self._remove_copies(target, probe)
        return message_id

    async def _remove_copies(self, target: ChatTarget, probe: Probe) -> None:
        """Delete the copies a lost send may have left among `probe.candidates`."""
        removed: list[int] = []
        for candidate in probe.candidates:
            if len(removed) >= probe.copies:
                break
            try:
                if not await self._is_copy(target, candidate, probe.content):
                    continue
                await self._delete(target, candidate)
            except (TelegramBadRequest, TelegramServerError, TelegramNetworkError) as exc:
                log.warning("telegram.lost_send_unsettled", chat_id=target.chat_id,
                            message_id=candidate, error=str(exc))
                break
            removed.append(candidate)
        log.info("telegram.lost_send_settled", chat_id=target.chat_id,
                 probed=len(probe.candidates), removed=removed)

    async def _delete(self, target: ChatTarget, message_id: int) -> None:
        async def send() -> bool:
            return await self._bot(DeleteMessage.model_construct(
                chat_id=target.chat_id, message_id=message_id))
        await self._call(target, CallKind.MESSAGE, Priority.FINAL, send)

    async def _is_copy(self, target: ChatTarget, message_id: int, content: Content) -> bool:
        """Whether `message_id` shows exactly `content`: an edit to it is refused as not
        modified. A user's message can't be edited; either way nothing changes."""
        try:
            await self._call(target, CallKind.MESSAGE, Priority.FINAL,
                             lambda: self._bot(EditMessageText.model_construct(
                                 chat_id=target.chat_id, message_id=message_id,
                                 text=content.text, entities=content.entities, parse_mode=None,
                                 reply_markup=content.markup)))
        except TelegramBadRequest as exc:
            return _is(exc, "message is not modified")
        # Not refused: it was a bot message this process never heard of (sent before it
        # started, or by another process with the same token), and it now shows this content.
        log.error("telegram.probe_changed_message", chat_id=target.chat_id, message_id=message_id)
        return False

    async def edit(
        self, target: ChatTarget, message_id: int, rendered: Rendered, *, priority: Priority,
        markup: InlineKeyboardMarkup | None = None, on_send: Callable[[], None] | None = None,
        shed: bool = True, on_plain: Callable[[], None] | None = None,
    ) -> None:
        async def attempt(r: Rendered) -> None:
            async def send() -> Any:
                if on_send:
                    on_send()
                return await self._bot(EditMessageText.model_construct(
                    chat_id=target.chat_id, message_id=message_id, text=r.text,
                    entities=_entities(r), parse_mode=None, reply_markup=markup,
                ))
            await self._call(target, CallKind.MESSAGE, priority, send, shed=shed)

        try:
            await self._with_plain_fallback(rendered, attempt, on_plain)
        except TelegramBadRequest as exc:
            if _is(exc, "message is not modified"):
                return  # same content already there: nothing to do
            if _is(exc, "message to edit not found", "message can't be edited"):
                raise MessageGone(exc.message) from exc
            raise

    async def typing(self, target: ChatTarget) -> None:
        async def send() -> Any:
            return await self._bot.send_chat_action(
                chat_id=target.chat_id, action="typing", message_thread_id=target.thread_id
            )
        await self._call(target, CallKind.DRAFT, Priority.INTERIM, send)

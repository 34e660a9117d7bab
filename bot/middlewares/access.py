"""Access control for every kind of update, in one place.

Private users not allowed are told their numeric id (so the owner can add it); denied groups get
silence. Nothing denied reaches a handler, so nothing denied reaches the LLM.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import CallbackQuery, Message, TelegramObject, Update, User

from bot.config import IdList
from bot.handlers.context import migration_of

log = structlog.get_logger(__name__)


class AccessPolicy:
    def __init__(self, users: IdList, chats: IdList, admins: IdList) -> None:
        self.users = users
        self.chats = chats
        self.admins = admins
        # Supergroups that allowed groups became (see `follow`).
        self._followed: set[int] = set()

    def allows(self, user_id: int | None, chat_id: int, private: bool) -> bool:
        if user_id is not None and (user_id in self.users or user_id in self.admins):
            return True
        return not private and (chat_id in self.chats or chat_id in self._followed)

    def follow(self, old_chat_id: int, new_chat_id: int) -> bool:
        """A group became a supergroup with a new id: allowed before, it stays allowed. The
        store records the move (`Store.migrations`) and start-up follows it again, for as long
        as the old id stays allowed. True when the new id is allowed only through this."""
        if new_chat_id in self.chats or not self.allows(None, old_chat_id, private=False):
            return False
        self._followed.add(new_chat_id)
        return True

    def is_admin(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.admins


def _from_another_bot(event: TelegramObject, user: User) -> bool:
    if not user.is_bot:
        return False
    inner = event.event if isinstance(event, Update) else event
    # Anonymous group admins write as @GroupAnonymousBot on behalf of the group (sender_chat).
    return not (isinstance(inner, Message) and inner.sender_chat is not None)


class AccessMiddleware(BaseMiddleware):
    def __init__(self, policy: AccessPolicy) -> None:
        self._policy = policy

    def _migration(self, event: TelegramObject) -> None:
        # Telegram sends a service message to the old chat and one to the new: either may come
        # first, and the new chat's would otherwise be denied like any unknown group.
        message = event.event if isinstance(event, Update) else event
        ids = migration_of(message) if isinstance(message, Message) else None
        if ids is None:
            return
        old, new = ids
        if self._policy.follow(old, new):
            log.warning("access.chat_migrated", chat_id=old, new_chat_id=new,
                        hint=f"allowed as {old} was; add {new} to ALLOWED_CHAT_IDS to allow it "
                             f"without {old}")

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        user = data.get("event_from_user")
        chat = data.get("event_chat")
        if user is not None and _from_another_bot(event, user):
            # Never answer a bot: two bots answering each other would loop, and burn tokens.
            log.info("access.bot_ignored", user_id=user.id, chat_id=chat.id if chat else None)
            return None
        if chat is None:
            return await handler(event, data)  # updates with no chat (none handled today)
        self._migration(event)
        private = chat.type == "private"
        # In a private chat the chat id is the user's id (updates like a draft stop carry no user).
        user_id = user.id if user else (chat.id if private else None)
        if self._policy.allows(user_id, chat.id, private):
            data["is_admin"] = self._policy.is_admin(user_id)
            return await handler(event, data)
        log.info("access.denied", user_id=user_id, chat_id=chat.id, private=private)
        if isinstance(event, Update):
            event = event.event
        if private and isinstance(event, Message) and user_id is not None:
            await event.answer(
                f"Sorry, this bot is private. Your Telegram user id is {user_id}: "
                "ask the owner to add it to ALLOWED_USER_IDS."
            )
        elif isinstance(event, CallbackQuery):
            await event.answer("Not allowed.")
        return None

"""The messages the bot knows it made in each chat, so that a send whose answer was lost is
neither doubled nor left behind.

A sendMessage whose connection dies after the request went out (a timeout, a reset, a 5xx from a
proxy) may or may not have created the message, and the Bot API has no idempotency key. Retried
blindly, a final lands twice (other bots sent up to 32 copies); an interim frame of the edit path
leaves a partial message with its cursor. Message ids in a chat only grow, so once a later send
comes back as message N, the lost attempt's message, if it exists, is one of the ids between the
highest id known before the attempt and N that no call of the bot returned. Editing such an id to
the attempt's exact content is refused with "message is not modified" only if it is that copy;
a user's or another bot's message "can't be edited". Either way nothing changes, as long as the
only bot messages with unknown ids are lost attempts of that one content: so the ledger records
every message-creating call (this middleware sees them all, handler replies included) and gives
out probes only while the chat's lost attempts share one content.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiogram.client.default import Default
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import TelegramNetworkError, TelegramServerError
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod

# Ids a call returned, per chat: enough to cover every id between a lost attempt and its retry.
KNOWN_PER_CHAT = 256
# Chats remembered at once (the least recently used is forgotten first).
CHATS = 4096
# A lost copy lands right after the attempt; a busy group may have messages of others between.
MAX_PROBES = 4

# Methods that make a message, and whose failure may have made one all the same.
_CREATING = ("send", "copy", "forward")
_NOT_CREATING = frozenset({"sendMessageDraft", "sendRichMessageDraft", "sendChatAction"})


@dataclass
class Content:
    """What a lost sendMessage showed, as the call had it: an edit to exactly this is refused
    as not modified."""

    text: str
    entities: Any = None
    markup: Any = None

    @classmethod
    def of(cls, bot: Bot, method: object) -> Content | None:
        """The content of a sendMessage without parse_mode (ours); None for anything else."""
        text = getattr(method, "text", None)
        parse_mode = getattr(method, "parse_mode", None)
        if isinstance(parse_mode, Default):
            parse_mode = bot.default[parse_mode.name]
        if (getattr(method, "__api_method__", None) != "sendMessage" or not isinstance(text, str)
                or parse_mode is not None):
            return None
        return cls(text, getattr(method, "entities", None), getattr(method, "reply_markup", None))


@dataclass
class _Lost:
    floor: int  # the highest id known in the chat when the attempt went out
    content: Content | None  # None: not a text message (its copy cannot be probed)


@dataclass
class _Chat:
    known: deque[int] = field(default_factory=lambda: deque(maxlen=KNOWN_PER_CHAT))
    top: int = 0
    lost: list[_Lost] = field(default_factory=list)


@dataclass(frozen=True)
class Probe:
    """Ids that may hold a lost copy of `content`, lowest first; `copies` at most are."""

    chat_id: int
    candidates: tuple[int, ...]
    content: Content
    copies: int


class MessageLedger(BaseRequestMiddleware):
    """Install with `bot.session.middleware(ledger)`; `Outbound` reads it."""

    def __init__(self) -> None:
        self._chats: OrderedDict[int, _Chat] = OrderedDict()

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat()
            if len(self._chats) > CHATS:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return chat

    def saw(self, chat_id: int, message_id: int) -> None:
        """A message of the chat whose id is known (one the bot made, or the question)."""
        chat = self._chat(chat_id)
        if message_id > chat.top or message_id not in chat.known:
            chat.known.append(message_id)
            chat.top = max(chat.top, message_id)

    def settle(self, chat_id: int, message_id: int) -> Probe | None:
        """A send to the chat came back as `message_id`: where any lost copy before it may be.

        The chat's lost attempts are forgotten either way: None when there were none, when no id
        is unaccounted for (the common case: the retry took the next id), or when probing is not
        safe (lost attempts of different contents, or one whose content is unknown)."""
        chat = self._chats.get(chat_id)
        if chat is None or not chat.lost:
            return None
        lost, chat.lost = chat.lost, []
        content = lost[0].content
        floor = min(item.floor for item in lost)
        if content is None or floor <= 0 or any(item.content != content for item in lost):
            return None
        known = set(chat.known)
        candidates = tuple(
            mid for mid in range(floor + 1, message_id) if mid not in known
        )[:MAX_PROBES]
        if not candidates:
            return None
        return Probe(chat_id, candidates, content, copies=len(lost))

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        chat_id: Any = getattr(method, "chat_id", None)
        if (not isinstance(chat_id, int) or not name.startswith(_CREATING)
                or name in _NOT_CREATING):
            return await make_request(bot, method)
        chat = self._chat(chat_id)
        floor = chat.top
        try:
            result = await make_request(bot, method)
        except (TelegramNetworkError, TelegramServerError):
            chat.lost.append(_Lost(floor, Content.of(bot, method)))
            raise
        # Session middlewares get the call's result (a Message, a MessageId), despite the name.
        message_id = getattr(result, "message_id", None)
        if isinstance(message_id, int):
            self.saw(chat_id, message_id)
        return result

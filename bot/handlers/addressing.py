"""Is a group message meant for the bot, and what is the prompt once the address is removed?"""

from __future__ import annotations

from aiogram.types import Message, User


def strip_mentions(message: Message, me: User) -> str | None:
    """The prompt text without the bot's @mention, or None when the bot is not mentioned."""
    text = message.text or message.caption or ""
    if not text or not me.username:
        return None
    handle = f"@{me.username}".lower()
    found = False
    # Offsets are UTF-16 units: cut on the UTF-16 encoding, then decode back.
    raw = text.encode("utf-16-le")
    cuts: list[tuple[int, int]] = []
    for ent in message.entities or message.caption_entities or []:
        start, end = ent.offset * 2, (ent.offset + ent.length) * 2
        piece = raw[start:end].decode("utf-16-le", errors="ignore")
        if (ent.type == "mention" and piece.lower() == handle) or (
            ent.type == "text_mention" and ent.user is not None and ent.user.id == me.id
        ):
            found = True
            if ent.type == "mention":
                cuts.append((start, end))
    if not found:
        return None
    for start, end in sorted(cuts, reverse=True):
        raw = raw[:start] + raw[end:]
    return " ".join(raw.decode("utf-16-le").split())


def is_reply_to_bot(message: Message, me: User) -> bool:
    replied = message.reply_to_message
    if replied is None or replied.from_user is None:
        return False
    # In forums every topic message "replies" to the topic's first message; that is not a reply
    # to the bot unless the bot wrote it.
    return replied.from_user.id == me.id


def author_name(message: Message) -> str | None:
    # Anonymous admins (and channels) write on behalf of a chat; `from` is then a placeholder
    # such as @GroupAnonymousBot, not the author.
    if message.sender_chat is not None:
        return message.sender_chat.title
    user = message.from_user
    return (user.full_name or user.username) if user else None

"""/start, /help, /new (/reset), /stop, /retry, /system."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import Message

from bot.services.chat import ChatService, Prompt
from bot.services.gate import ConversationBusy
from bot.storage import ConversationSettings, Store

from .context import key_of, target_of

HELP = (
    "I answer with a language model, streaming as it writes.\n\n"
    "In private chats just write to me. In groups mention me, reply to one of my messages, "
    "or use /ask <question>.\n\n"
    "/new — start a fresh conversation (alias /reset)\n"
    "/stop — stop the answer being written\n"
    "/retry — answer your last message again\n"
    "/model — show or switch the model (admins)\n"
    "/system <text> — set this conversation's system prompt (admins)\n"
    "/help — this message"
)

PRIVATE_COMMANDS = [
    ("new", "Start a fresh conversation"),
    ("stop", "Stop the current answer"),
    ("retry", "Answer the last message again"),
    ("model", "Show or switch the model"),
    ("help", "What I can do"),
]
GROUP_COMMANDS = [("ask", "Ask me something"), *PRIVATE_COMMANDS]


async def start(message: Message) -> None:
    name = message.from_user.first_name if message.from_user else "there"
    await message.answer(f"Hi {name}! Ask me anything.\n\n{HELP}")


async def help_(message: Message) -> None:
    await message.answer(HELP)


async def new(message: Message, store: Store, chat: ChatService) -> None:
    await chat.stop(key_of(message))
    await store.new_conversation(key_of(message))
    await message.answer("🆕 New conversation started. Earlier messages are forgotten.")


async def stop(message: Message, chat: ChatService) -> None:
    if not await chat.stop(key_of(message)):
        await message.answer("Nothing to stop.")


async def retry(message: Message, store: Store, chat: ChatService) -> None:
    key = key_of(message)
    last = await store.drop_last_answer(key)
    if last is None:
        await message.answer("Nothing to retry yet.")
        return
    try:
        chat.submit(Prompt(key=key, target=target_of(message), text=last.content,
                           author=last.name))
    except ConversationBusy:
        await store.append(key, last)
        await message.answer("⏳ I'm still answering — try /retry again in a moment.")


async def system(message: Message, command: CommandObject, store: Store, is_admin: bool) -> None:
    if not is_admin:
        await message.answer("Only admins can change the system prompt.")
        return
    key = key_of(message)
    current = await store.settings(key)
    text = (command.args or "").strip()
    await store.update_settings(
        key, ConversationSettings(model=current.model, system_prompt=text or None)
    )
    await message.answer("System prompt updated." if text else "System prompt reset to default.")


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(start, CommandStart())
    router.message.register(help_, Command("help"))
    router.message.register(new, Command("new", "reset"))
    router.message.register(stop, Command("stop"))
    router.message.register(retry, Command("retry"))
    router.message.register(system, Command("system"))
    return router

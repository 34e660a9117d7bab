"""/model: show the conversation's model and the endpoint's list; admins switch it."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

from bot.config import Settings
from bot.llm import LLMClient, LLMError
from bot.storage import ConversationKey, ConversationSettings, Store

from . import filters
from .context import key_of

log = structlog.get_logger(__name__)

MAX_LISTED = 30
CALLBACK_LIMIT = 64  # bytes of callback_data Telegram accepts


async def available_models(settings: Settings, llm: LLMClient) -> list[str]:
    if settings.llm.openai_models:
        return list(settings.llm.openai_models)
    return await llm.list_models()


async def _switch(store: Store, key: ConversationKey, model: str) -> None:
    current = await store.settings(key)
    await store.update_settings(
        key, ConversationSettings(model=model, system_prompt=current.system_prompt))


def _keyboard(models: list[str], current: str) -> InlineKeyboardMarkup | None:
    rows = [
        [InlineKeyboardButton(text=("✅ " if m == current else "") + m, callback_data=f"model:{m}")]
        for m in models[:MAX_LISTED] if len(f"model:{m}".encode()) <= CALLBACK_LIMIT
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def model_command(
    message: Message, command: CommandObject, store: Store, llm: LLMClient, settings: Settings,
    is_admin: bool,
) -> None:
    key = key_of(message)
    current = (await store.settings(key)).model or settings.llm.openai_model
    try:
        models = await available_models(settings, llm)
    except LLMError as exc:
        log.warning("models.list_failed", error=str(exc))
        models = []
    wanted = (command.args or "").strip()
    if wanted:
        if not is_admin:
            await message.answer("Only admins can switch the model.")
        elif models and wanted not in models:
            await message.answer(f"Unknown model: {wanted}. Send /model to see the list.")
        else:
            await _switch(store, key, wanted)
            await message.answer(f"Model for this conversation: {wanted}")
        return
    lines = [f"Current model: {current}"]
    if models:
        lines.append("Available: " + ", ".join(models[:MAX_LISTED])
                     + (" …" if len(models) > MAX_LISTED else ""))
    else:
        lines.append("The endpoint did not list its models.")
    if is_admin:
        lines.append("Tap one to switch, or send /model <name>.")
    markup = _keyboard(models, current) if is_admin else None
    await message.answer("\n".join(lines), reply_markup=markup)


async def model_button(
    query: CallbackQuery, store: Store, llm: LLMClient, settings: Settings, is_admin: bool
) -> None:
    model = (query.data or "").removeprefix("model:")
    if not is_admin or query.message is None:
        await query.answer("Only admins can switch the model.")
        return
    msg = query.message
    if not isinstance(msg, Message):
        await query.answer("That message is too old; send /model again.")
        return
    await _switch(store, key_of(msg), model)
    await query.answer(f"Switched to {model}")
    await msg.edit_text(f"Model for this conversation: {model}")


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(model_command, Command("model"))
    router.callback_query.register(model_button, filters.button("model:"))
    return router

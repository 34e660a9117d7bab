"""The model endpoint, seen as a stream of typed events. Knows nothing of Telegram."""

from bot.llm.client import ChatRequest, LLMClient
from bot.llm.errors import (
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMStreamError,
    LLMStreamingUnsupported,
    LLMTimeoutError,
)
from bot.llm.events import Finish, LLMEvent, ReasoningDelta, TextDelta, Usage
from bot.llm.wire import AiohttpTransport, Pace

__all__ = [
    "AiohttpTransport",
    "ChatRequest",
    "Finish",
    "LLMClient",
    "LLMConnectionError",
    "LLMError",
    "LLMEvent",
    "LLMStatusError",
    "LLMStreamError",
    "LLMStreamingUnsupported",
    "LLMTimeoutError",
    "Pace",
    "ReasoningDelta",
    "TextDelta",
    "Usage",
]

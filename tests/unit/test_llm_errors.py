"""The pure parts of the LLM error tree: Retry-After, provider messages, classification."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.llm import (
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMStreamError,
    LLMStreamingUnsupported,
    LLMTimeoutError,
)
from bot.llm.errors import parse_retry_after, provider_message, status_error

NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_tree_shape() -> None:
    assert issubclass(LLMTimeoutError, LLMConnectionError)
    assert issubclass(LLMStreamingUnsupported, LLMStatusError)
    for kind in (LLMConnectionError, LLMStatusError, LLMStreamError):
        assert issubclass(kind, LLMError)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Thu, 01 Jan 2026 11:00:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"error": {"message": "Rate limit", "type": "x"}}, "Rate limit"),
        ({"error": "plain string"}, "plain string"),
        ({"detail": "FastAPI style"}, "FastAPI style"),
        ({"message": "multi\n  line"}, "multi line"),
        ({"error": {"code": 1}}, ""),
        ([1, 2], ""),
    ],
)
def test_provider_message(payload: object, message: str) -> None:
    assert provider_message(payload) == message


def test_status_error_without_json_body_has_short_message() -> None:
    error = status_error(502, "<html>Bad gateway</html>", None)
    assert type(error) is LLMStatusError
    assert str(error).startswith("The model endpoint answered HTTP 502")
    assert error.retry_after is None


def test_streaming_unsupported_only_for_client_errors() -> None:
    assert isinstance(
        status_error(422, '{"detail": "stream not allowed"}', None), LLMStreamingUnsupported
    )
    assert type(status_error(500, '{"error": "stream broke"}', None)) is LLMStatusError

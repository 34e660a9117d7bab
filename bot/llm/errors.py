"""What can go wrong talking to the model endpoint, as one small tree.

`str(error)` is a short sentence fit to log or show; it never holds the API key (callers
redact provider text before it gets here) and never the request URL, which some providers
carry a key in.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Iterator, Mapping
from contextlib import aclosing, contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, cast

import httpx
from httpx_sse import SSEError

from bot.llm.events import Usage

BODY_LIMIT = 500
# Enough for any error document; a misbehaving endpoint must not make us buffer megabytes.
ERROR_BYTES = 16 * 1024
_MESSAGE_LIMIT = 200
# Word-start match so "upstream timed out" is not read as a complaint about `stream`.
_MENTIONS_STREAM = re.compile(r"\bstream", re.IGNORECASE)


class LLMError(Exception):
    """Base of every error the LLM client raises."""


class LLMConnectionError(LLMError):
    """The endpoint could not be reached, or the connection broke mid-answer."""


class LLMTimeoutError(LLMConnectionError):
    """No connection within the connect timeout, or no bytes within the idle timeout."""


class LLMStatusError(LLMError):
    """The endpoint answered with a non-2xx status."""

    def __init__(self, message: str, *, status_code: int, body: str, retry_after: float | None):
        super().__init__(message)
        self.status_code = status_code
        self.body = body[:BODY_LIMIT]
        self.retry_after = retry_after


class LLMStreamingUnsupported(LLMStatusError):
    """The endpoint will not stream; `LLMClient.complete` is the fallback.

    Detected as either a 400/422 whose body mentions `stream` (this includes servers that
    reject `stream_options`, which `complete` does not send), or a 2xx answered with
    `application/json` instead of `text/event-stream` (then `status_code` is that 2xx).
    In the second case the JSON is often the whole answer (the server ignored `stream`):
    `completion` then holds it as `LLMClient.complete` returns it, and nothing need be asked
    twice.
    """

    def __init__(self, message: str, *, status_code: int, body: str, retry_after: float | None,
                 completion: tuple[str, str, Usage | None] | None = None) -> None:
        super().__init__(message, status_code=status_code, body=body, retry_after=retry_after)
        self.completion = completion


class LLMStreamError(LLMError):
    """A 2xx answer that is not what was asked for.

    Either the provider put an error object in it (mid-stream or instead of the answer),
    or the content type or shape is wrong. `payload` holds the error object or body.
    """

    def __init__(self, message: str, *, payload: Any = None) -> None:
        super().__init__(message)
        self.payload = payload


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def provider_message(payload: Any) -> str:
    """The human part of an error payload: OpenAI's `{"error": {"message"}}` and kin."""
    if isinstance(payload, Mapping):
        for key in ("error", "message", "detail"):
            inner = payload.get(key)
            if inner:
                return provider_message(inner)
        return ""
    if isinstance(payload, str):
        return " ".join(payload.split())[:_MESSAGE_LIMIT]
    return ""


def json_answer(response: httpx.Response, secret: str | None) -> Any:
    """The JSON of a fully read answer, or the error that answer stands for."""
    text = redact(response.text, secret)
    if not response.is_success:
        raise status_error(response.status_code, text, response.headers.get("retry-after"))
    try:
        payload = json.loads(text)
    except ValueError:
        raise LLMStreamError(
            "The model endpoint answered with something that is not JSON.",
            payload=text[:BODY_LIMIT],
        ) from None
    if isinstance(payload, dict) and payload.get("error"):
        raise in_band_error(payload, secret)
    return payload


async def read_body(
    response: httpx.Response, secret: str | None, limit: int = ERROR_BYTES
) -> str:
    """The start (`limit` bytes) of a body that is not an event stream (an error, or a whole
    JSON answer), decoded leniently and redacted."""
    raw = bytearray()
    chunks = cast(AsyncGenerator[bytes, None], response.aiter_bytes())
    async with aclosing(chunks):
        async for chunk in chunks:
            raw += chunk
            if len(raw) >= limit:
                break
    return redact(bytes(raw[:limit]).decode("utf-8", "replace"), secret)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait, from either form RFC 9110 allows: delta-seconds or an HTTP-date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def status_error(status_code: int, body: str, retry_after: str | None) -> LLMStatusError:
    """The error for a non-2xx answer; `body` must already be redacted."""
    try:
        message = provider_message(json.loads(body))
    except ValueError:
        message = provider_message(body)
    unsupported = status_code in (400, 422) and _MENTIONS_STREAM.search(body) is not None
    kind = LLMStreamingUnsupported if unsupported else LLMStatusError
    text = f"The model endpoint answered HTTP {status_code}"
    return kind(
        f"{text}: {message}" if message else f"{text}.",
        status_code=status_code,
        body=body,
        retry_after=parse_retry_after(retry_after),
    )


def in_band_error(payload: Any, secret: str | None) -> LLMStreamError:
    message = redact(provider_message(payload), secret)
    return LLMStreamError(
        f"The model provider reported an error: {message}"
        if message
        else "The model provider reported an error.",
        payload=payload,
    )


@contextmanager
def translated(*, connect_timeout: float, read_timeout: float) -> Iterator[None]:
    """Re-raise httpx errors as this tree, so callers catch one family only.

    The messages name the exception class, never the exception text: httpx puts the URL
    there, and some providers take the key as a query parameter.
    """
    try:
        yield
    except SSEError as exc:  # before TransportError, which it subclasses
        raise LLMStreamError("The model endpoint did not answer with an event stream.") from exc
    except httpx.ConnectTimeout as exc:
        raise LLMTimeoutError(
            f"The model endpoint did not accept a connection within {connect_timeout:g} s."
        ) from exc
    except httpx.ReadTimeout as exc:
        raise LLMTimeoutError(f"The model endpoint sent nothing for {read_timeout:g} s.") from exc
    except httpx.TimeoutException as exc:
        raise LLMTimeoutError(f"The model endpoint timed out ({type(exc).__name__}).") from exc
    except httpx.TransportError as exc:
        raise LLMConnectionError(
            f"Could not reach the model endpoint ({type(exc).__name__})."
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise LLMError(f"The request to the model endpoint failed ({type(exc).__name__}).") from exc

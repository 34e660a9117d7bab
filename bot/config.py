"""Settings, grouped by concern, read from the environment (and an optional `.env` file).

Every environment variable name here is a contract with users' `.env` files: add, never rename.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot import eventloop


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable and fits on one line."""


class StreamTransport(StrEnum):
    AUTO = "auto"
    DRAFT = "draft"
    EDIT = "edit"
    OFF = "off"


class ReasoningDisplay(StrEnum):
    HIDDEN = "hidden"
    COLLAPSED = "collapsed"
    FULL = "full"


class IdList:
    """A set of Telegram ids, or `*` for everyone. Parsed from `1,2,3`, `*` or empty."""

    def __init__(self, ids: frozenset[int], everyone: bool = False) -> None:
        self.ids = ids
        self.everyone = everyone

    def __contains__(self, item: object) -> bool:
        return self.everyone or item in self.ids

    def __bool__(self) -> bool:
        return self.everyone or bool(self.ids)

    def __repr__(self) -> str:
        return "IdList(*)" if self.everyone else f"IdList({sorted(self.ids)})"

    @classmethod
    def parse(cls, raw: Any) -> IdList:
        if isinstance(raw, IdList):
            return raw
        if isinstance(raw, int):
            return cls(frozenset({raw}))
        text = str(raw or "").strip()
        if text == "*":
            return cls(frozenset(), everyone=True)
        ids: set[int] = set()
        for part in re.split(r"[,\s]+", text):
            if not part:
                continue
            try:
                ids.add(int(part))
            except ValueError:
                msg = f"expected comma-separated numeric ids or '*', got {part!r}"
                raise ValueError(msg) from None
        return cls(frozenset(ids))


IdListField = Annotated[IdList, NoDecode]


def _url(value: str) -> str:
    # The message never echoes the value: a URL may carry credentials (https://user:key@host).
    value = value.strip().rstrip("/")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ValueError("expected an http(s) URL with a valid port") from None
    spaced = any(c.isspace() for c in value)
    if parts.scheme not in ("http", "https") or not parts.hostname or spaced:
        raise ValueError("expected an http(s) URL such as https://host/path")
    return value


_COMMON = SettingsConfigDict(
    env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False,
    arbitrary_types_allowed=True,
)


class TelegramSettings(BaseSettings):
    model_config = _COMMON

    telegram_bot_token: SecretStr
    telegram_api_url: str = "https://api.telegram.org"
    # Bot API request timeout (seconds) for every call but getUpdates' long poll.
    telegram_timeout: float = Field(default=30.0, gt=0)

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, v: SecretStr) -> SecretStr:
        # The shape Telegram issues: <bot id>:<35 url-safe characters>. Never echo the value.
        if not re.fullmatch(r"\d+:[A-Za-z0-9_-]{20,}", v.get_secret_value().strip()):
            raise ValueError("expected a token like 123456:ABC-DEF… from @BotFather")
        return SecretStr(v.get_secret_value().strip())

    _api_url = field_validator("telegram_api_url")(classmethod(lambda cls, v: _url(v)))


class LLMSettings(BaseSettings):
    model_config = _COMMON

    openai_base_url: str = "https://api.openai.com/v1"
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    # Comma list shown by /model instead of asking the endpoint's GET /models.
    openai_models: Annotated[tuple[str, ...], NoDecode] = ()
    system_prompt: str = "You are a helpful assistant. Answer concisely. Use Markdown."
    llm_temperature: float | None = Field(default=None, ge=0, le=2)
    llm_max_tokens: int | None = Field(default=None, gt=0)
    llm_connect_timeout: float = Field(default=10.0, gt=0)
    # No byte from the endpoint for this long ends the answer as interrupted.
    llm_idle_timeout: float = Field(default=60.0, gt=0)
    # Hard cap on one answer, first byte to last.
    llm_total_timeout: float = Field(default=600.0, gt=0)
    # Retries before the first token (connect errors, 429, 5xx), with backoff and jitter.
    llm_max_retries: int = Field(default=2, ge=0, le=10)

    _base = field_validator("openai_base_url")(classmethod(lambda cls, v: _url(v)))

    @field_validator("openai_models", mode="before")
    @classmethod
    def _models(cls, v: Any) -> tuple[str, ...]:
        if isinstance(v, str):
            return tuple(p.strip() for p in v.split(",") if p.strip())
        return tuple(v or ())


class StreamSettings(BaseSettings):
    model_config = _COMMON

    stream_transport: StreamTransport = StreamTransport.AUTO
    # Shown at the end of edit-streamed text while the answer grows; never left behind.
    stream_cursor: str = " ▌"
    # Interim frames are never closer together than this, whatever the budget allows.
    stream_min_interval: float = Field(default=0.25, ge=0)
    # An interim frame waits for at least this many new characters (unless min interval x4 passed).
    stream_min_chars: int = Field(default=8, ge=1)
    # Without STREAM_MIN_CHARS new characters, a frame still goes out this long after the last.
    stream_max_interval: float = Field(default=1.0, gt=0)
    # How late the event loop may run before interim frames are spaced out (0: never).
    stream_max_loop_lag_ms: int = Field(default=40, ge=0)
    # How long a chat that refused a draft is remembered as draft-less.
    draft_fallback_ttl: float = Field(default=3600.0, ge=0)
    reasoning_display: ReasoningDisplay = ReasoningDisplay.COLLAPSED


class LimitSettings(BaseSettings):
    """Telegram's published (and reported) limits; the outbound scheduler enforces them."""

    model_config = _COMMON

    limit_chat_per_second: float = Field(default=1.0, gt=0)
    limit_chat_burst: int = Field(default=3, ge=1)
    limit_group_per_minute: int = Field(default=20, ge=1)
    limit_draft_per_5s: int = Field(default=20, ge=1)
    limit_draft_per_30s: int = Field(default=40, ge=1)
    limit_global_per_second: float = Field(default=30.0, gt=0)


class AccessSettings(BaseSettings):
    model_config = _COMMON

    allowed_user_ids: IdListField = Field(default_factory=lambda: IdList(frozenset()))
    allowed_chat_ids: IdListField = Field(default_factory=lambda: IdList(frozenset()))
    admin_user_ids: IdListField = Field(default_factory=lambda: IdList(frozenset()))
    group_mode: Literal["mention", "all"] = "mention"

    @field_validator("allowed_user_ids", "allowed_chat_ids", "admin_user_ids", mode="before")
    @classmethod
    def _ids(cls, v: Any) -> IdList:
        return IdList.parse(v)


class StorageSettings(BaseSettings):
    model_config = _COMMON

    storage_url: str = "sqlite:///data/bot.sqlite3"
    history_max_tokens: int = Field(default=6000, ge=100)
    history_max_messages: int = Field(default=40, ge=2)
    # Messages waiting behind the current answer in one conversation.
    queue_max: int = Field(default=3, ge=0)

    @field_validator("storage_url")
    @classmethod
    def _scheme(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v == "memory://"):
            raise ValueError("expected sqlite:///path/to/file.sqlite3 or memory://")
        return v


class RuntimeSettings(BaseSettings):
    model_config = _COMMON

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console", "auto"] = "auto"
    log_content: bool = False
    bot_mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = "0.0.0.0:8443"
    http_listen: str | None = "0.0.0.0:8080"
    shutdown_grace: float = Field(default=20.0, ge=0)
    # uvloop where installed (the image), asyncio's own loop otherwise: bot/eventloop.py
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v


@dataclass(frozen=True)
class Settings:
    telegram: TelegramSettings
    llm: LLMSettings
    stream: StreamSettings
    limits: LimitSettings
    access: AccessSettings
    storage: StorageSettings
    runtime: RuntimeSettings


_GROUPS: dict[str, type[BaseSettings]] = {
    "telegram": TelegramSettings,
    "llm": LLMSettings,
    "stream": StreamSettings,
    "limits": LimitSettings,
    "access": AccessSettings,
    "storage": StorageSettings,
    "runtime": RuntimeSettings,
}


def _describe(err: ValidationError) -> str:
    first = err.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "?"
    if first["type"] == "missing":
        return f"{name} is required but not set"
    # msg never contains the input value for secrets: pydantic's messages name the rule only.
    return f"{name} is invalid: {first['msg'].removeprefix('Value error, ')}"


def load_settings(**overrides: Any) -> Settings:
    """Read every group; raise ConfigError naming the first bad variable."""
    groups: dict[str, Any] = {}
    for key, cls in _GROUPS.items():
        fields = {k: v for k, v in overrides.items() if k in cls.model_fields}
        try:
            groups[key] = cls(**fields)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from None
    settings = Settings(**groups)
    rt = settings.runtime
    if rt.bot_mode == "webhook":
        if not rt.webhook_url:
            raise ConfigError("WEBHOOK_URL is required when BOT_MODE=webhook")
        if rt.webhook_secret is None:
            raise ConfigError("WEBHOOK_SECRET is required when BOT_MODE=webhook")
        try:
            _url(rt.webhook_url)
        except ValueError as exc:
            raise ConfigError(f"WEBHOOK_URL is invalid: {exc}") from None
    try:
        eventloop.loop_factory(rt.event_loop)
    except eventloop.LoopUnavailable as exc:
        raise ConfigError(str(exc)) from None
    return settings

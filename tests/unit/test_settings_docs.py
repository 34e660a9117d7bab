"""Every setting in bot/config.py is documented, with its real default, in .env.example and in
the README's Configuration table; neither documents a setting that does not exist."""

from __future__ import annotations

import enum
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from pydantic_settings import BaseSettings

import bot.config as config

ROOT = Path(__file__).resolve().parents[2]
STUB_TOKEN = "42:TEST-TOKEN-abcdefghijklmnopqrstuvwxyz"

GROUPS = [cls for cls in vars(config).values()
          if isinstance(cls, type) and issubclass(cls, BaseSettings) and cls is not BaseSettings
          and cls.__module__ == config.__name__]
FIELDS = {name.upper(): (cls, name) for cls in GROUPS for name in cls.model_fields}


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def env_example() -> dict[str, list[str]]:
    """NAME → documented values, from `NAME=value` and `# NAME=value` lines."""
    found: dict[str, list[str]] = {}
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    for m in re.finditer(r"^(?:#\s*)?([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE):
        found.setdefault(m.group(1), []).append(_unquote(m.group(2)))
    return found


def readme_table() -> dict[str, list[str]]:
    """NAME → documented defaults, from rows like | `NAME` | `default` | meaning |."""
    found: dict[str, list[str]] = {}
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    for m in re.finditer(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|([^|]*)\|", text, re.MULTILINE):
        cell = m.group(2).strip()
        cell = "" if cell in ("", "—", "-", "*(required)*", "*(unset)*") else cell.strip("`")
        found.setdefault(m.group(1), []).append(_unquote(cell))
    return found


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, config.IdList):
        return (sorted(value.ids), value.everyone)
    if isinstance(value, enum.Enum):
        return value.value
    return value


def parsed(cls: type[BaseSettings], name: str, raw: str) -> Any:
    """What the app reads from `raw` (None for an empty value of an optional setting)."""
    if raw == "" and cls.model_fields[name].get_default(call_default_factory=True) is None:
        return None
    values: dict[str, Any] = {"_env_file": None, name: raw}
    if cls is config.TelegramSettings and name != "telegram_bot_token":
        values["telegram_bot_token"] = STUB_TOKEN
    return _plain(getattr(cls(**values), name))


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in FIELDS:
        monkeypatch.delenv(key, raising=False)


@pytest.mark.parametrize(("doc", "source"), [(".env.example", env_example),
                                             ("README.md", readme_table)])
def test_every_setting_is_documented_once_and_nothing_else(doc: str, source: Any) -> None:
    documented = source()
    missing = sorted(set(FIELDS) - set(documented))
    unknown = sorted(set(documented) - set(FIELDS))
    twice = sorted(k for k, v in documented.items() if len(v) > 1)
    assert not missing, f"{doc} does not document {missing}"
    assert not unknown, f"{doc} documents settings that do not exist: {unknown}"
    assert not twice, f"{doc} documents these more than once: {twice}"


@pytest.mark.parametrize(("doc", "source"), [(".env.example", env_example),
                                             ("README.md", readme_table)])
def test_documented_defaults_are_the_real_ones(doc: str, source: Any) -> None:
    documented = source()
    wrong = []
    for key, (cls, name) in FIELDS.items():
        field = cls.model_fields[name]
        if field.is_required() or key not in documented:
            continue
        default = _plain(field.get_default(call_default_factory=True))
        value = parsed(cls, name, documented[key][0])
        if value != default:
            wrong.append(f"{key}: documented {documented[key][0]!r}, default {default!r}")
    assert not wrong, f"{doc} shows wrong defaults: " + "; ".join(wrong)


def test_the_example_is_valid_once_the_token_is_filled_in() -> None:
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    active = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", text, re.MULTILINE))
    assert set(active) >= {"TELEGRAM_BOT_TOKEN", "OPENAI_API_KEY", "ALLOWED_USER_IDS"}
    active["TELEGRAM_BOT_TOKEN"] = STUB_TOKEN
    settings = config.load_settings(**{k.lower(): v for k, v in active.items()})
    assert settings.runtime.bot_mode == "polling"

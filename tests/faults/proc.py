"""`python -m bot` as a real process against the in-test fakes on loopback, its output captured."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def bot_env(**values: str) -> dict[str, str]:
    # Only what the test sets: no developer .env (cwd is a temporary folder), no stray settings.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", "HTTP_LISTEN": "", **values}


class BotProcess:
    """One `python -m bot`; stdout and stderr are read as they come, line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = asyncio.Event()
        self._readers = [asyncio.create_task(self._read(s)) for s in (proc.stdout, proc.stderr)]

    async def _read(self, stream: asyncio.StreamReader | None) -> None:
        assert stream is not None
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))
            self._changed.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and record.get("event") == name:
                    out.append(record)
        return out

    async def wait_event(self, name: str, timeout: float = 30) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while not (found := self.events(name)):
                self._changed.clear()
                if self.proc.returncode is not None:
                    raise AssertionError(f"bot exited before {name!r}:\n{self.output}")
                waiter = asyncio.create_task(self._changed.wait())
                exited = asyncio.create_task(self.proc.wait())
                await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                exited.cancel()
        return found[0]

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self, timeout: float = 30) -> int:
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await asyncio.gather(*self._readers)
        return code


@contextlib.asynccontextmanager
async def bot_process(cwd: Path, *args: str, **env: str) -> AsyncIterator[BotProcess]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=bot_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    bot = BotProcess(proc)
    try:
        yield bot
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await asyncio.gather(*bot._readers, return_exceptions=True)

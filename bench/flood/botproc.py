"""Process A of the flood benchmark: one bot, ours or the baseline, polling the fake Bot API.

Ours is the real app: `build_app` + `Dispatcher.start_polling`, as in production. The baseline
is `bench.flood.baseline` behind a minimal Dispatcher, with the same LLM client.

JSON lines on stdin/stdout:
    -> {"ready": true}
    <- go     (start measuring)
    <- stop   -> {"cpu_s": …, "peak_rss_mb": …, "lag_p99_ms": …, "lag_max_ms": …}

    uv run python -m bench.flood.botproc ours|baseline TELEGRAM_URL LLM_URL

Diagnostics, all off by default: BENCH_SPY=path (py-spy profile; BENCH_SPY_FORMAT=speedscope
keeps the samples' order), BENCH_PROFILE=path (cProfile), BENCH_CENSUS=path (objects the GC
tracks 3 s in), BENCH_GARBAGE=path (what the GC freed), BENCH_GC=a,b,c (GC thresholds instead of
bot/heap.py's), BENCH_STORAGE=sqlite:///path (the production store instead of memory),
BENCH_SHARE=path (the load governor's frame share at each of its ticks), BENCH_TRACE=path (where
each answer's first text spends its time: FirstTextTrace).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.client.telegram import TelegramAPIServer

from bench.flood.baseline import baseline_dispatcher
from bench.flood.load import TOKEN
from bot import eventloop, heap
from bot.app import build_app
from bot.config import load_settings
from bot.llm import AiohttpTransport, LLMClient
from bot.logs import setup_logging
from bot.transport.load import LoopLoad

LAG_TICK = 0.01


class RttMeter(BaseRequestMiddleware):
    """Round trips of chat-targeted Bot API calls as the bot sees them (getUpdates excluded)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        # BENCH_TRACE: chat -> [start, end] of its first call with text
        self.first_text: dict[int, list[float]] = {}

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        chat_id = getattr(method, "chat_id", None)
        if chat_id is None:
            return await make_request(bot, method)
        start = time.monotonic()
        first = getattr(method, "text", None) and chat_id not in self.first_text
        if first:
            self.first_text[chat_id] = [start]
        try:
            return await make_request(bot, method)
        finally:
            end = time.monotonic()
            self.samples.append(end - start)
            if first:
                self.first_text[chat_id].append(end)

    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000 if self.samples else 0.0

    def first_text_ms(self) -> dict[int, float]:
        """Per chat, the round trip of the call that carried its first text: a round trip
        taken at the same moment as the first text, when the loops are busiest, not the run's
        median, most of which is taken later."""
        return {chat: (span[1] - span[0]) * 1000 for chat, span in self.first_text.items()
                if len(span) == 2}


class GcMeter:
    """Time the cyclic garbage collector stops the loop, per generation (pauses are lag too)."""

    def __init__(self) -> None:
        self.seconds = [0.0, 0.0, 0.0]
        self.counts = [0, 0, 0]
        self.worst = [0.0, 0.0, 0.0]
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
            return
        gen, took = info["generation"], time.perf_counter() - self._start
        self.seconds[gen] += took
        self.counts[gen] += 1
        self.worst[gen] = max(self.worst[gen], took)

    def report(self) -> dict[str, Any]:
        return {"gc_s": [round(s, 3) for s in self.seconds], "gc_counts": self.counts,
                "gc_worst_ms": [round(w * 1000, 1) for w in self.worst]}


class FirstTextTrace:
    """BENCH_TRACE=path: where an answer's first text spends its time. Per chat: when the bot
    read its first token (`read`), when the Bot API call carrying it started and returned
    (`sent`); per Bot API call: how long aiohttp's pool took to hand it a connection and how
    many connections were opened meanwhile (`connects`). The fakes' logs have when the model
    wrote the token and when the fake Bot API received the call, on the same monotonic clock;
    `python -m bench.flood.firsttext DUMP TRACE` puts them together."""

    def __init__(self, rtt: RttMeter) -> None:
        import aiohttp.connector

        from bot.transport.answer import AnswerStream

        self.rtt = rtt
        self.read: dict[int, float] = {}
        self.connects: list[tuple[float, float, int]] = []
        self.opened = 0
        push, connect = AnswerStream.push, aiohttp.connector.BaseConnector.connect
        create = aiohttp.connector.TCPConnector._create_connection
        trace = self

        def traced_push(stream: AnswerStream, delta: str) -> None:
            trace.read.setdefault(stream.target.chat_id, time.monotonic())
            push(stream, delta)

        async def timed_connect(connector: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            start, opened = time.monotonic(), trace.opened
            try:
                return await connect(connector, req, *args, **kwargs)
            finally:
                if req.url.path.startswith("/bot"):  # the Bot API's, not the model's
                    trace.connects.append((start, time.monotonic() - start,
                                           trace.opened - opened))

        async def counted_create(connector: Any, *args: Any, **kwargs: Any) -> Any:
            trace.opened += 1
            return await create(connector, *args, **kwargs)

        AnswerStream.push = traced_push  # type: ignore[method-assign]
        aiohttp.connector.BaseConnector.connect = timed_connect  # type: ignore[method-assign]
        aiohttp.connector.TCPConnector._create_connection = counted_create  # type: ignore

    def report(self) -> dict[str, Any]:
        return {"read": self.read, "sent": self.rtt.first_text, "connects": self.connects}


def run_delay() -> float:
    """Seconds this process spent runnable but waiting for a CPU (Linux schedstat; 0 elsewhere)."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def rss_mb() -> float:
    """The process's resident set now (peak RSS alone does not say when memory is taken)."""
    with open("/proc/self/statm", "rb") as statm:
        return round(int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


class LagMeter:
    """How late a 10 ms ticker wakes up: the event loop's lag as any callback sees it."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.samples: list[list[float]] = []  # [loop time, lag ms]
        # a second: [loop time, CPU seconds, worst lag ms, RSS MB at its end]
        self.timeline: list[list[float]] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._tick())

    async def _tick(self) -> None:
        # time.monotonic, not loop.time(): uvloop's clock counts whole milliseconds, and the
        # fakes' logs (which the report lines these samples up with) use time.monotonic.
        second, worst, cpu = time.monotonic(), 0.0, time.process_time()
        while True:
            start = time.monotonic()
            await asyncio.sleep(LAG_TICK)
            now = time.monotonic()
            lag = now - start - LAG_TICK
            self.lags.append(lag)
            self.samples.append([round(now, 4), round(lag * 1000, 2)])
            worst = max(worst, lag)
            if now - second >= 1.0:  # one line a second: when the loop was busy, and how busy
                self.timeline.append([round(now, 3), round(time.process_time() - cpu, 3),
                                      round(worst * 1000, 1), rss_mb()])
                second, worst, cpu = now, 0.0, time.process_time()

    async def stop(self) -> dict[str, Any]:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        lags = sorted(self.lags) or [0.0]
        return {"timeline": self.timeline, "lag_samples": self.samples,
                "lag_p50_ms": lags[len(lags) // 2] * 1000,
                "lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000,
                "lag_max_ms": lags[-1] * 1000}


def start_spy() -> subprocess.Popen[bytes] | None:
    """BENCH_SPY=path: a py-spy sampling profile (folded stacks) of the bot while it streams:
    unlike cProfile it barely slows the process, so the shares it shows are the real ones."""
    path = os.environ.get("BENCH_SPY")
    if not path:
        return None
    form = os.environ.get("BENCH_SPY_FORMAT", "raw")  # speedscope keeps the samples' order
    return subprocess.Popen(["py-spy", "record", "-p", str(os.getpid()), "-o", path,
                             "-f", form, "-r", "250", "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def census(after: float, path: str) -> None:
    """BENCH_CENSUS=path: which objects the collector tracks `after` seconds into the run (a gen2
    collection walks all of them; gc.freeze() keeps only start-up's out of the walk)."""
    await asyncio.sleep(after)
    counts: dict[str, int] = {}
    for obj in gc.get_objects():
        name = f"{type(obj).__module__}.{type(obj).__qualname__}"
        counts[name] = counts.get(name, 0) + 1
    top = sorted(counts.items(), key=lambda kv: -kv[1])[:60]
    report = {"tracked": sum(counts.values()), "frozen": gc.get_freeze_count(), "top": top}
    await asyncio.to_thread(Path(path).write_text, json.dumps(report, indent=0))


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def watch_share(path: str) -> Callable[[], None]:
    """BENCH_SHARE=path: every tick of the load governor, [time, how late ms, share granted]."""
    samples: list[list[float]] = []
    observe = LoopLoad.observe

    def observed(self: LoopLoad, late: float) -> None:
        observe(self, late)
        samples.append([round(time.monotonic(), 3), round(late * 1000, 1), round(self.share, 3)])

    LoopLoad.observe = observed  # type: ignore[method-assign]
    return lambda: Path(path).write_text(json.dumps(samples))


async def run_ours(telegram: str, llm: str) -> tuple[Bot, Dispatcher, list[Any]]:
    settings = load_settings(
        telegram_bot_token=TOKEN, telegram_api_url=telegram, openai_base_url=llm,
        openai_api_key="sk-bench", openai_model="fake-model", allowed_user_ids="*",
        # BENCH_STORAGE=sqlite:///path: the production default instead of memory
        storage_url=os.environ.get("BENCH_STORAGE", "memory://"), http_listen=None,
        log_level="WARNING",
    )
    app = await build_app(settings)
    await app.prepare()
    heap.settle()  # as bot/runner.py does after start-up
    if os.environ.get("BENCH_GC"):
        gc.set_threshold(*map(int, os.environ["BENCH_GC"].split(",")))
    return app.bot, app.dispatcher, [app.close]


async def run_baseline(telegram: str, llm: str) -> tuple[Bot, Dispatcher, list[Any]]:
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(telegram)),
              default=DefaultBotProperties(parse_mode=None))
    # The same LLM transport as ours (read eagerly: the baseline passes no pace).
    http = httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0),
                             transport=AiohttpTransport())
    client = LLMClient(http, llm, "sk-bench")
    return bot, baseline_dispatcher(client), [bot.session.close, http.aclose]


async def main(policy: str, telegram: str, llm: str) -> None:
    setup_logging("WARNING", "console")
    save_share = watch_share(os.environ["BENCH_SHARE"]) if os.environ.get("BENCH_SHARE") else None
    build = run_ours if policy == "ours" else run_baseline
    bot, dp, closers = await build(telegram, llm)
    rtt = RttMeter()
    trace = FirstTextTrace(rtt) if os.environ.get("BENCH_TRACE") else None
    bot.session.middleware(rtt)
    polling = asyncio.create_task(dp.start_polling(
        bot, handle_signals=False, close_bot_session=False, polling_timeout=1,
        allowed_updates=dp.resolve_used_update_types()))
    emit({"ready": True})
    meter = LagMeter()
    gcm = GcMeter()
    keep: list[asyncio.Task[None]] = []
    cpu0 = waited0 = 0.0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    spy = None
    while line := (await read_line()).strip():
        if line == "go":
            spy = start_spy()
            cpu0 = time.process_time()
            ru0 = resource.getrusage(resource.RUSAGE_SELF)
            waited0 = run_delay()
            meter.start()
            gc.callbacks.append(gcm)
            if os.environ.get("BENCH_GARBAGE"):
                gc.set_debug(gc.DEBUG_SAVEALL)
            if os.environ.get("BENCH_CENSUS"):
                keep.append(asyncio.create_task(census(3.0, os.environ["BENCH_CENSUS"])))
            emit({"ok": True})
        elif line == "stop":
            lag = await meter.stop()
            gc.callbacks.remove(gcm)
            if os.environ.get("BENCH_GARBAGE"):  # what the collector had to free, by type
                gc.collect()
                tally: dict[str, int] = {}
                for obj in gc.garbage:
                    name = f"{type(obj).__module__}.{type(obj).__qualname__}"
                    tally[name] = tally.get(name, 0) + 1
                top = sorted(tally.items(), key=lambda kv: -kv[1])[:80]
                report = {"objects": len(gc.garbage), "top": top}
                await asyncio.to_thread(Path(os.environ["BENCH_GARBAGE"]).write_text,
                                        json.dumps(report, indent=0))
                gc.set_debug(0)
                gc.garbage.clear()
            if trace is not None:
                await asyncio.to_thread(Path(os.environ["BENCH_TRACE"]).write_text,
                                        json.dumps(trace.report()))
            if save_share is not None:
                await asyncio.to_thread(save_share)
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                await asyncio.to_thread(spy.wait, 30)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            emit({"cpu_s": time.process_time() - cpu0, "peak_rss_mb": usage.ru_maxrss / 1024,
                  # in the kernel: socket calls, epoll, loopback delivery to the fakes
                  "sys_s": usage.ru_stime - ru0.ru_stime,
                  # runnable but not running: the CPU went to another process (the fakes)
                  "waited_s": run_delay() - waited0,
                  "rtt_p50_ms": rtt.p50_ms(), "first_text_rtt_ms": rtt.first_text_ms(),
                  **lag, **gcm.report()})
            break
    await dp.stop_polling()
    with contextlib.suppress(asyncio.CancelledError, TimeoutError):
        await asyncio.wait_for(polling, 5)
    for close in reversed(closers):
        with contextlib.suppress(Exception):
            await close()


if __name__ == "__main__":
    profile = os.environ.get("BENCH_PROFILE")  # a path: cProfile stats of the whole run
    if profile:
        import cProfile

        cProfile.run("asyncio.run(main(*sys.argv[1:4]))", profile)
    else:
        # The loop production runs (uvloop), for both policies; EVENT_LOOP=asyncio to compare.
        eventloop.run(main(*sys.argv[1:4]), os.environ.get("EVENT_LOOP", "auto"))  # type: ignore[arg-type]

"""Builds everything once — settings in, a running bot out — and closes it all in reverse."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BotCommand, BotCommandScopeAllGroupChats, BotCommandScopeAllPrivateChats

from bot.clock import Clock, LoopClock
from bot.config import Settings
from bot.handlers import chat as chat_handlers
from bot.handlers import commands, errors, migration, models, stop
from bot.llm import AiohttpTransport
from bot.metered_llm import MeteredLLMClient
from bot.metrics import Metrics, health_max_silence
from bot.middlewares.access import AccessMiddleware, AccessPolicy
from bot.middlewares.admission import Admission
from bot.middlewares.dedupe import DedupeMiddleware
from bot.middlewares.logcontext import LogContextMiddleware
from bot.middlewares.response_types import KeepResponseTypes
from bot.services.chat import ChatConfig, ChatService
from bot.services.gate import ConversationGate
from bot.services.pacing import MAX_INTERVAL, ReadPacing
from bot.storage import Store, open_store
from bot.transport.answer import StreamOptions
from bot.transport.budget import BudgetMiddleware
from bot.transport.fallback import DraftRefusals
from bot.transport.jsonsession import JsonSession
from bot.transport.ledger import MessageLedger
from bot.transport.limits import Limits
from bot.transport.load import LoopLoad
from bot.transport.manager import StreamManager
from bot.transport.outbound import Outbound
from bot.transport.scheduler import OutboundScheduler
from bot.transport.throttle import FrameSpacing

log = structlog.get_logger(__name__)

# The Bot API session's connections. The scheduler, not the pool, must be what paces calls: at
# the drafts' allowance 1,000 streaming chats make ~1,300 calls/s, which at a 0.2 s round trip
# need ~260 connections; aiogram's default of 100 queued the 1,000-chat benchmark's first frames
# behind one another (first text p50 3.1 s, 1.7 s with 256). The scheduler keeps part of them
# free of interim frames (scheduler.py).
TELEGRAM_CONNECTIONS = 256


@dataclass
class App:
    settings: Settings
    bot: Bot
    dispatcher: Dispatcher
    http: httpx.AsyncClient
    store: Store
    chat: ChatService
    scheduler: OutboundScheduler
    clock: Clock
    closers: list[Any] = field(default_factory=list)
    metrics: Metrics = field(default_factory=Metrics)

    async def prepare(self) -> None:
        """getMe (fails fast on a bad token), command menus, and the facts worth logging."""
        me = await self.bot.me()
        self.dispatcher["me"] = me
        log.info("bot.ready", username=me.username, id=me.id,
                 privacy_mode=not me.can_read_all_group_messages,
                 transport=self.settings.stream.stream_transport.value,
                 event_loop=type(asyncio.get_running_loop()).__module__.partition(".")[0])
        if not me.can_read_all_group_messages:
            log.info("bot.privacy_mode", hint="in groups the bot sees only commands, mentions "
                     "and replies; that is all it needs with GROUP_MODE=mention")
        if not self.settings.access.allowed_user_ids and not self.settings.access.admin_user_ids:
            log.warning("access.nobody_allowed",
                        hint="ALLOWED_USER_IDS is empty: every private user is refused")
        await self.bot.set_my_commands(
            [BotCommand(command=c, description=d) for c, d in commands.PRIVATE_COMMANDS],
            scope=BotCommandScopeAllPrivateChats(),
        )
        await self.bot.set_my_commands(
            [BotCommand(command=c, description=d) for c, d in commands.GROUP_COMMANDS],
            scope=BotCommandScopeAllGroupChats(),
        )

    def in_flight(self) -> set[asyncio.Task[Any]]:
        """Updates being handled and answers under way or waiting their turn."""
        return {t for t in (*self.dispatcher._handle_update_tasks, *self.chat.tasks)
                if not t.done()}

    async def drain(self, grace: float) -> None:
        """Give answers in flight `grace` seconds, then finalize the rest with a note."""
        if self.in_flight():
            log.info("shutdown.draining", answers=self.chat.active_count, grace=grace)
            if await self._settle(grace):
                await self.chat.interrupt_all()
                await self._settle(10)

    async def _settle(self, timeout: float) -> set[asyncio.Task[Any]]:
        """Wait up to `timeout` for everything in flight, including answers that updates still
        being handled hand on meanwhile; what is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while pending := self.in_flight():
                    await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        return self.in_flight()

    async def close(self) -> None:
        for closer in reversed(self.closers):
            with contextlib.suppress(Exception):
                await closer()


async def build_app(settings: Settings, *, clock: Clock | None = None) -> App:
    clock = clock or LoopClock()
    closers: list[Any] = []
    tg = settings.telegram
    session = JsonSession(api=TelegramAPIServer.from_base(tg.telegram_api_url),
                          timeout=tg.telegram_timeout, limit=TELEGRAM_CONNECTIONS)
    bot = Bot(token=tg.telegram_bot_token.get_secret_value(), session=session,
              default=DefaultBotProperties(parse_mode=None))
    closers.append(bot.session.close)
    metrics = Metrics(clock.now, max_silence=health_max_silence(tg.telegram_timeout))
    session.middleware(metrics.telegram_middleware)
    session.middleware(KeepResponseTypes())

    llm_cfg = settings.llm
    # The transport holds one connection per answer streaming, with no cap: a pool of 100
    # (httpx's default) would make the 101st concurrent answer fail on the connect timeout.
    http = httpx.AsyncClient(
        transport=AiohttpTransport(),
        timeout=httpx.Timeout(llm_cfg.llm_idle_timeout, connect=llm_cfg.llm_connect_timeout),
    )
    closers.append(http.aclose)
    llm = MeteredLLMClient(
        http, llm_cfg.openai_base_url,
        llm_cfg.openai_api_key.get_secret_value() if llm_cfg.openai_api_key else None,
        idle_timeout=llm_cfg.llm_idle_timeout, connect_timeout=llm_cfg.llm_connect_timeout,
        metrics=metrics,
    )
    store = await open_store(settings.storage.storage_url)
    closers.append(store.close)

    lim = settings.limits
    load = None
    if settings.stream.stream_max_loop_lag_ms:
        load = LoopLoad(clock, target=settings.stream.stream_max_loop_lag_ms / 1000)
        load.start()
        closers.append(load.stop)
        # `backlog` is looked up when scraped: Admission installs it further down.
        metrics.watch_load(lambda: load.late, lambda: load.share, lambda: load.intake,
                           lambda: load.backlog())
    scheduler = OutboundScheduler(Limits(
        chat_per_second=lim.limit_chat_per_second, chat_burst=lim.limit_chat_burst,
        group_per_minute=lim.limit_group_per_minute, draft_per_5s=lim.limit_draft_per_5s,
        draft_per_30s=lim.limit_draft_per_30s, global_per_second=lim.limit_global_per_second,
    ), clock, load, connections=TELEGRAM_CONNECTIONS)
    # Replies sent straight from handlers (notes, command answers) spend the same chat budget.
    session.middleware(BudgetMiddleware(scheduler))
    # Every message-creating call, so that a send whose answer was lost is neither doubled
    # nor left behind (`transport/ledger.py`).
    ledger = MessageLedger()
    session.middleware(ledger)
    st = settings.stream
    streams = StreamManager(
        Outbound(bot, scheduler, clock, ledger), clock, DraftRefusals(clock, st.draft_fallback_ttl),
        st.stream_transport.value,
        StreamOptions(cursor=st.stream_cursor,
                      spacing=FrameSpacing(min_interval=st.stream_min_interval,
                                           min_chars=st.stream_min_chars,
                                           max_interval=st.stream_max_interval),
                      can_stop=True),
    )
    chat = ChatService(
        llm, store, streams, ConversationGate(settings.storage.queue_max),
        ChatConfig(
            default_model=llm_cfg.openai_model, system_prompt=llm_cfg.system_prompt,
            history_max_tokens=settings.storage.history_max_tokens,
            history_max_messages=settings.storage.history_max_messages,
            temperature=llm_cfg.llm_temperature, max_tokens=llm_cfg.llm_max_tokens,
            max_retries=llm_cfg.llm_max_retries, total_timeout=llm_cfg.llm_total_timeout,
            reasoning_display=st.reasoning_display.value,
            log_content=settings.runtime.log_content,
        ),
        clock,
        # aiohttp's read timer keeps running while a paced stream's socket is paused: a pause
        # must stay well inside LLM_IDLE_TIMEOUT.
        ReadPacing(clock, max_interval=min(MAX_INTERVAL, llm_cfg.llm_idle_timeout / 4)),
        watch=metrics.answer_detached,
    )

    # No handler keeps FSM state: without FSM, aiogram builds no storage key, context and
    # record per update (a few of the ~1 ms each update costs before its model is asked).
    dp = Dispatcher(chat=chat, store=store, llm=llm, settings=settings,
                    group_mode=settings.access.group_mode, disable_fsm=True)
    dp.update.outer_middleware(metrics.update_middleware)
    metrics.watch_active(lambda: chat.active_count)
    dp.update.outer_middleware(Admission(load=load))
    dp.update.outer_middleware(LogContextMiddleware())
    dp.update.outer_middleware(DedupeMiddleware(store))
    acc = settings.access
    policy = AccessPolicy(acc.allowed_user_ids, acc.allowed_chat_ids, acc.admin_user_ids)
    followed = [new for old, new in (await store.migrations()).items() if policy.follow(old, new)]
    if followed:
        log.info("access.followed_supergroups", chat_ids=followed)
    dp.update.outer_middleware(AccessMiddleware(policy))
    dp.include_routers(errors.make_router(), migration.make_router(), stop.make_router(),
                       commands.make_router(), models.make_router(), chat_handlers.make_router())
    return App(settings=settings, bot=bot, dispatcher=dp, http=http, store=store, chat=chat,
               scheduler=scheduler, clock=clock, closers=closers, metrics=metrics)

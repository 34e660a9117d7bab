"""Run a fake as a standalone process (e.g. a docker-compose service):

    python -m tests.fakes telegram --port 8081 [--token 42:TEST-TOKEN] [--username testbot]
    python -m tests.fakes llm --port 8082 [--reply "Hello from the fake"] [--model fake-model]

Both listen on 0.0.0.0 by default (other containers must reach them) and expose a small control
API under /_fake/ (health, push updates / queue replies, read recorded calls).
"""

from __future__ import annotations

import argparse
import asyncio

from tests.fakes.llm import FakeLLM
from tests.fakes.serve import LocalServer, serve_forever
from tests.fakes.telegram import FakeTelegram, FloodLimits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes")
    kinds = parser.add_subparsers(dest="kind", required=True)

    tg = kinds.add_parser("telegram", help="fake Telegram Bot API")
    tg.add_argument("--token", default="42:TEST-TOKEN")
    tg.add_argument("--username", default="testbot")
    tg.add_argument("--flood", action="store_true", help="enforce Telegram-like flood limits")

    llm = kinds.add_parser("llm", help="fake OpenAI-compatible endpoint")
    llm.add_argument("--reply", default=None, help="every answer (default: echo the user)")
    llm.add_argument("--model", action="append", dest="models", default=None)
    llm.add_argument("--chunk-chars", type=int, default=4)
    llm.add_argument("--ttft", type=float, default=0.0, help="seconds to first token")
    llm.add_argument("--tps", type=float, default=None, help="deltas per second")
    llm.add_argument("--api-key", default=None)

    for sub in (tg, llm):
        sub.add_argument("--host", default="0.0.0.0")  # containers must reach it
        sub.add_argument("--port", type=int, required=True)
    return parser.parse_args(argv)


def build(args: argparse.Namespace) -> LocalServer:
    if args.kind == "telegram":
        return FakeTelegram(
            token=args.token,
            username=args.username,
            flood=FloodLimits() if args.flood else None,
            host=args.host,
            port=args.port,
        )
    return FakeLLM(
        models=args.models or ["fake-model"],
        chunk_chars=args.chunk_chars,
        ttft=args.ttft,
        tokens_per_second=args.tps,
        default_reply=args.reply,
        api_key=args.api_key,
        host=args.host,
        port=args.port,
    )


def main(argv: list[str] | None = None) -> None:
    asyncio.run(serve_forever(build(parse_args(argv))))


if __name__ == "__main__":
    main()

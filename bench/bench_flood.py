"""Flood benchmark: our outbound budget against the best-known open-source defaults, same load.

For each scenario (1 private chat, 1 group, 200 chats, 1,000 chats) and each policy, three
processes on one machine:
  - the fakes (bench/flood/fakes.py): the fake Bot API enforcing Telegram's flood limits
    (answers 429 with retry_after, counts calls made inside a retry window) and the fake LLM
    streaming 40 tokens/s after 300 ms (BENCH_FAKES=split: a process for each);
  - the bot (bench/flood/botproc.py): ours is the real app (build_app + Dispatcher polling),
    the baseline (bench/flood/baseline.py) edits every 0.8 s or 24 characters and retries a
    429 after min(retry_after, 5 s), behind a minimal Dispatcher;
  - this one, which starts both, pushes the questions and prints the figures.
The bot's CPU, peak RSS and event-loop lag are its own: the fakes run elsewhere.

    uv run python bench/bench_flood.py [--only N] [--plot bench/flood_chars.png]
    uv run python bench/bench_flood.py --only 4 --repeat 10   # ours only: the spread of 10 runs

BENCH_TG_RTT_MS=50 puts a network between the bot and the fake Bot API (50 ms round trip, half each
way; 0, loopback, by default), for the first text against a real round trip.
BENCH_FORMATTED=1 makes the answers Markdown (a word in ten bold, one in ten code: a frame then
carries entities, as most models' answers do); plain text otherwise, as in bench/RESULTS.md.
BENCH_BOT_PYTHON=path runs the bot's process under another interpreter (a venv of the same lock
file, e.g. `UV_PROJECT_ENVIRONMENT=/tmp/venv312 uv sync -p 3.12`); the fakes stay on this one.

Not a test: it prints numbers (and saves the plot). A few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.flood.fakes import merge  # noqa: E402
from bench.flood.load import SCENARIOS, Scenario  # noqa: E402
from bench.flood.report import Figures, figures, pct, plot, rows  # noqa: E402

POLICIES = ("ours", "baseline")


class Proc:
    """A child speaking JSON lines on stdin/stdout; its stderr goes to a log file."""

    def __init__(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        self.proc, self.log = proc, log

    @classmethod
    async def start(cls, log: Path, *args: str) -> Proc:
        err = log.open("ab")
        python = sys.executable
        if "bench.flood.botproc" in args and os.environ.get("BENCH_BOT_PYTHON"):
            python = os.environ["BENCH_BOT_PYTHON"]
        proc = await asyncio.create_subprocess_exec(
            python, *args, cwd=ROOT, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=err, limit=2**28,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        err.close()
        return cls(proc, log)

    async def send(self, line: str | dict[str, Any]) -> None:
        assert self.proc.stdin
        text = line if isinstance(line, str) else json.dumps(line)
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def read(self, timeout: float) -> Any:
        assert self.proc.stdout
        line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not line:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"child exited early; its stderr ends with:\n{tail}")
        return json.loads(line)

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def run_one(scenario: Scenario, policy: str, log: Path) -> tuple[dict[str, Any], Figures]:
    if os.environ.get("BENCH_FAKES") == "split":  # a process for each fake
        tg = await Proc.start(log, "-m", "bench.flood.fakes", "telegram")
        llm = await Proc.start(log, "-m", "bench.flood.fakes", "llm")
        fakes = [tg, llm]
    else:
        tg = llm = await Proc.start(log, "-m", "bench.flood.fakes", "telegram", "llm")
        fakes = [tg]
    children = list(fakes)
    try:
        urls: dict[str, str] = {}
        for fake in fakes:
            urls.update(await fake.read(30))
        bot = await Proc.start(log, "-m", "bench.flood.botproc", policy, urls["telegram"],
                               urls["llm"])
        children.insert(0, bot)
        await bot.read(60)  # ready
        await bot.send("go")
        await bot.read(10)
        chats = [[c.chat_id, c.group] for c in scenario.chats]
        for fake in reversed(fakes):  # the model knows the chats before any question is asked
            await fake.send({"cmd": "start", "chats": chats, "tokens": scenario.tokens})
            await fake.read(30)
        await tg.send({"cmd": "wait", "timeout": scenario.timeout})
        run = await tg.read(scenario.timeout + 60)
        if llm is not tg:
            await llm.send({"cmd": "wait", "timeout": 0})
            run = merge(run, await llm.read(60))
        await bot.send("stop")
        proc = await bot.read(30)
        for fake in fakes:
            await fake.send({"cmd": "quit"})
    finally:
        for child in children:
            await child.close()
    run["bot"] = proc
    return run, figures(scenario, policy, run, proc)


def print_table(scenario: Scenario, ours: Figures, base: Figures) -> list[str]:
    lines = [f"### {scenario.name}: {scenario.tokens} tokens per answer", "",
             "| | ours | baseline | ours vs baseline |", "|---|---|---|---|"]
    lines += [f"| {m} | {a} | {b} | {r} |" for m, a, b, r in rows(ours, base)]
    lines.append("")
    print("\n".join(lines), flush=True)
    return lines


def verdicts(results: dict[str, tuple[Figures, Figures]]) -> list[str]:
    lines = ["### Done when (ours)", ""]
    for name, (ours, _) in results.items():
        usage = sorted(ours.usage)
        lines.append(
            f"- {name}: {ours.retry_after} × 429, {ours.inside_window} calls inside a retry "
            f"window; first text p50 {pct(ours.first_text_ms, .5):.0f} ms / p99 "
            f"{pct(ours.first_text_ms, .99):.0f} ms after the first token (Bot API round "
            f"trip p50 {ours.rtt_ms:.0f} ms; p50 {pct(ours.first_text_own_rtts, .5):.2f} "
            f"round trips of the call that carried it), p50 "
            f"{pct(ours.asked_text_ms, .5):.0f} ms / p99 "
            f"{pct(ours.asked_text_ms, .99):.0f} ms after the question; allowance used: median "
            f"{pct(usage, .5):.0%}, min {usage[0] if usage else float('nan'):.0%}; "
            f"event-loop lag p99 {ours.lag_p99_ms:.0f} ms while streaming "
            f"({ours.lag_p99_run_ms:.0f} ms over the whole run); peak RSS "
            f"{ours.peak_rss_mb:.0f} MB")
    print("\n".join(lines), flush=True)
    return lines


def spread(scenario: Scenario, runs: list[Figures]) -> list[str]:
    """Min, median and max over repeated runs of ours: one run of the 1,000-chat scenario says
    little on a shared machine, whose speed drifts by tens of per cent from minute to minute."""
    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    metrics: list[tuple[str, list[float], str]] = [
        ("429s + calls inside a retry window", [f.retry_after + f.inside_window for f in runs],
         "{:.0f}"),
        ("first text p50 after the first token", [pct(f.first_text_ms, .5) for f in runs],
         "{:.0f} ms"),
        ("first text p99 after the first token", [pct(f.first_text_ms, .99) for f in runs],
         "{:.0f} ms"),
        ("Bot API round trip p50", [f.rtt_ms for f in runs], "{:.0f} ms"),
        ("first text p50 in round trips of the same run",
         [pct(f.first_text_ms, .5) / f.rtt_ms for f in runs if f.rtt_ms], "{:.2f}"),
        ("first text p50 in round trips of the call that carried it",
         [pct(f.first_text_own_rtts, .5) for f in runs if f.first_text_own_rtts], "{:.2f}"),
        ("allowance used, median chat", [med(f.usage) * 100 for f in runs], "{:.0f} %"),
        ("allowance used, least chat", [min(f.usage, default=0) * 100 for f in runs], "{:.0f} %"),
        ("event-loop lag p99 while streaming", [f.lag_p99_ms for f in runs], "{:.0f} ms"),
        ("bot peak RSS", [f.peak_rss_mb for f in runs], "{:.0f} MB"),
        ("bot CPU", [f.cpu_s for f in runs], "{:.1f} s"),
        ("fakes' CPU for the same work (the machine's speed)", [f.fakes_cpu_s for f in runs],
         "{:.1f} s"),
    ]
    lines = [f"### {scenario.name}, ours: {len(runs)} runs", "",
             "| | min | median | max |", "|---|---|---|---|"]
    for name, values, form in metrics:
        lo, mid, hi = (form.format(v) for v in (min(values), med(values), max(values)))
        lines.append(f"| {name} | {lo} | {mid} | {hi} |")
    lines.append("")
    print("\n".join(lines), flush=True)
    return lines


async def main(only: list[int], plot_path: str | None, markdown: str | None,
               dump: str | None, policies: tuple[str, ...], repeat: int = 0) -> None:
    log = Path(tempfile.gettempdir()) / "bench_flood.log"
    log.write_bytes(b"")
    if dump:
        await asyncio.to_thread(Path(dump).mkdir, parents=True, exist_ok=True)
    print(f"# Flood benchmark ({os.cpu_count()} cores; children's stderr in {log})\n")
    out: list[str] = []
    results: dict[str, tuple[Figures, Figures]] = {}
    raws: dict[str, dict[str, Any]] = {}
    for index, scenario in enumerate(SCENARIOS):
        if only and index + 1 not in only:
            continue
        if repeat:
            runs = []
            for n in range(repeat):
                raw, fig = await run_one(scenario, "ours", log)
                runs.append(fig)
                print(f"  ({scenario.name}, ours, run {n + 1}/{repeat}: lag p99 "
                      f"{fig.lag_p99_ms:.0f} ms, least chat {min(fig.usage):.0%}, median "
                      f"chat {statistics.median(fig.usage):.0%})", file=sys.stderr, flush=True)
                if dump:
                    await asyncio.to_thread(Path(dump, f"{index + 1}-ours-{n + 1}.json")
                                            .write_text, json.dumps(raw))
            out += spread(scenario, runs)
            continue
        figs = {}
        for policy in policies:
            started = time.monotonic()
            raws[policy], figs[policy] = await run_one(scenario, policy, log)
            print(f"  ({scenario.name}, {policy}: {time.monotonic() - started:.0f} s)",
                  file=sys.stderr, flush=True)
            if dump:
                raw = json.dumps(raws[policy])
                await asyncio.to_thread(Path(dump, f"{index + 1}-{policy}.json").write_text, raw)
        if len(figs) < 2:
            only_one = next(iter(figs.values()))
            brief = {k: v for k, v in vars(only_one).items() if not isinstance(v, list)}
            print(f"{scenario.name} ({policies[0]}): {brief}\n", flush=True)
            continue
        results[scenario.name] = (figs["ours"], figs["baseline"])
        out += print_table(scenario, figs["ours"], figs["baseline"])
        if plot_path and index == 0:
            first = str(scenario.chats[0].chat_id)
            plot(raws["ours"]["chats"][first], raws["baseline"]["chats"][first], plot_path,
                 f"One answer in a private chat ({scenario.tokens} tokens at 40 tokens/s)")
            print(f"plot: {plot_path}\n")
    if results:
        out += verdicts(results)
    if markdown:
        await asyncio.to_thread(Path(markdown).write_text, "\n".join(out) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", type=int, action="append", default=[],
                        help="run scenario N (1-4); repeatable")
    parser.add_argument("--plot", default=str(ROOT / "bench" / "flood_chars.png"))
    parser.add_argument("--markdown", default=None, help="also write the tables to this file")
    parser.add_argument("--dump", default=None, help="write each run's raw logs to this folder")
    parser.add_argument("--policy", choices=POLICIES, action="append", default=[],
                        help="run only this policy (no comparison table)")
    parser.add_argument("--repeat", type=int, default=0,
                        help="run ours N times per scenario and print min/median/max instead")
    args = parser.parse_args()
    asyncio.run(main(args.only, args.plot or None, args.markdown, args.dump,
                     tuple(args.policy) or POLICIES, args.repeat))

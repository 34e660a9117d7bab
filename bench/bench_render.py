"""Streaming render benchmark: a 20,000-character answer fed in 5-character deltas.

`pages()` is called after every delta, as a transport would per frame. Prints the total render +
split time (best of three runs, all runs listed), the per-frame cost at the end of the answer
(where a renderer that re-renders everything would be slowest) next to that at the start, and
the number of frames.

Run: uv run python bench/bench_render.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from anywhere, no install

from bot.render import MarkdownStream

# A model-like answer section: one-line paragraphs, a nested list, code, a table, a quote, math,
# emoji, CJK and Arabic. Repeated (numbered) up to the target size.
SECTION = "\n".join(
    [
        "## Step {n}: configure the service",
        "",
        "Before anything else, make sure **Python 3.11** is installed and that `uv` is on your"
        " `PATH`. The service reads its settings from the environment; see the"
        " [docs](https://example.com/docs/{n}) for the full list. Values such as `LLM_BASE_URL`"
        " and *timeouts* matter most, and the defaults are chosen so that a first run works"
        " without any tuning at all. 🚀",
        "",
        "1. Create a virtual environment with `uv venv`.",
        "2. Install the dependencies:",
        "   - `uv sync` for the locked set",
        "   - `uv add httpx` to add a **new** package",
        "3. Run the tests with `uv run pytest -q`.",
        "",
        "```python",
        "import asyncio",
        "",
        "",
        "async def main(n: int = {n}) -> None:",
        "    for i in range(n):",
        "        await asyncio.sleep(0.1)",
        '        print(f"tick {{i}}")  # 中文注释 and émoji 🎉',
        "",
        "",
        'if __name__ == "__main__":',
        "    asyncio.run(main())",
        "```",
        "",
        "| Setting | Default | Meaning |",
        "|---------|--------:|---------|",
        "| `timeout` | 30 | seconds before giving up |",
        "| `retries` | 3 | attempts on a 5xx |",
        "",
        "> **Note:** the formula $E = mc^2$ is unrelated, but ~~everyone~~ most people like it."
        " مرحبا — Arabic text stays readable too.",
        "",
        "",
    ]
)
SIZE, DELTA, RUNS, WINDOW = 20_000, 5, 3, 200


def answer(size: int = SIZE) -> str:
    parts: list[str] = []
    n = 1
    while sum(map(len, parts)) < size:
        parts.append(SECTION.format(n=n))
        n += 1
    return "".join(parts)[:size]


def run(text: str) -> tuple[float, list[float], int]:
    stream = MarkdownStream()
    frame_costs: list[float] = []
    started = time.perf_counter()
    for i in range(0, len(text), DELTA):
        t0 = time.perf_counter()
        stream.feed(text[i : i + DELTA])
        stream.pages()
        frame_costs.append(time.perf_counter() - t0)
    pages = stream.finish()
    return time.perf_counter() - started, frame_costs, len(pages)


def main() -> None:
    text = answer()
    runs = [run(text) for _ in range(RUNS)]
    total, frame_costs, pages = min(runs, key=lambda r: r[0])
    start, end = frame_costs[:WINDOW], frame_costs[-WINDOW:]
    print(f"answer: {len(text)} characters in {DELTA}-character deltas, {pages} pages")
    print(f"frames: {len(frame_costs)}")
    print(f"total: {total * 1000:.1f} ms (runs: {', '.join(f'{r[0] * 1000:.0f}' for r in runs)})")
    print(
        f"per frame at the end (last {WINDOW}): mean {statistics.mean(end) * 1e6:.1f} µs,"
        f" max {max(end) * 1e6:.0f} µs"
    )
    print(f"per frame at the start (first {WINDOW}): mean {statistics.mean(start) * 1e6:.1f} µs")


if __name__ == "__main__":
    main()

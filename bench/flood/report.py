"""Figures from one run's per-chat logs (recorded by the fake Bot API and the fake LLM)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.flood.load import Scenario

# Each chat's allowance while it streams: the rate its limits sustain (Bots FAQ, reported
# draft limits), and the bot's 30 messages/s shared by the chats that stream with messages.
DRAFTS_PER_S = 40 / 30
PRIVATE_MESSAGES_PER_S = 1.0
GROUP_MESSAGES_PER_S = 20 / 60
GLOBAL_PER_S = 30.0


@dataclass
class Figures:
    answers: int
    finals: int  # answers whose complete text arrived as a real message
    first_text_ms: list[float]  # first token -> first visible text
    # per answer, first token -> first visible text in round trips of the call that carried it
    first_text_own_rtts: list[float]
    asked_text_ms: list[float]  # question sent -> first visible text (all the user waits)
    asked_llm_ms: list[float]  # question sent -> the model asked (the bot's own queueing)
    final_ms: list[float]  # last token -> final message
    calls_per_answer: float
    updates_per_s: list[float]  # visible updates while tokens flow, per chat
    allowance_per_s: list[float]
    retry_after: int  # 429s answered
    inside_window: int  # calls made inside a retry window
    cpu_s: float
    # The fakes do the same work in every run of a scenario: their CPU for it is the machine's
    # speed at that moment, which drifts by tens of per cent on a shared machine.
    fakes_cpu_s: float
    peak_rss_mb: float
    lag_p99_ms: float  # while the answers stream (first question to last token)
    lag_max_ms: float
    lag_p99_run_ms: float  # over the whole run, finals and idle tail included
    rtt_ms: float  # median Bot API round trip seen by the bot
    gc_s: float  # CPU the cyclic garbage collector took, all generations
    gc_worst_ms: float  # its longest single pause

    @property
    def usage(self) -> list[float]:
        return [u / a for u, a in zip(self.updates_per_s, self.allowance_per_s, strict=True)]


def _allowance(group: bool, policy: str, message_streams: int) -> float:
    if policy == "ours" and not group:
        return DRAFTS_PER_S  # drafts: not messages, not in the bot-wide budget
    own = GROUP_MESSAGES_PER_S if group else PRIVATE_MESSAGES_PER_S
    return min(own, GLOBAL_PER_S / max(1, message_streams))


def figures(scenario: Scenario, policy: str, run: dict[str, Any],
            proc: dict[str, Any]) -> Figures:
    chats = run["chats"]
    message_streams = sum(1 for c in chats.values() if c["group"] or policy == "baseline")
    first, final, calls, updates, allowance = [], [], [], [], []
    asked_text: list[float] = []
    asked_llm: list[float] = []
    own_rtts: list[float] = []
    own_rtt_ms = proc.get("first_text_rtt_ms", {})  # JSON: chat ids as strings
    retry_after = 0
    for chat_id, chat in chats.items():
        log = chat["calls"]
        calls.append(len(log))
        retry_after += sum(1 for c in log if c[3] == 429)
        t0, t1 = chat["first_token"], chat["last_token"]
        if t0 is None:
            continue
        shown = [c for c in log if c[2] and c[4] > 0]
        if shown:
            first.append((shown[0][0] - t0) * 1000)
            if own_rtt_ms.get(str(chat_id)):
                own_rtts.append(first[-1] / own_rtt_ms[str(chat_id)])
            if chat.get("asked_at") is not None:
                asked_text.append((shown[0][0] - chat["asked_at"]) * 1000)
        if chat.get("asked_at") is not None and chat.get("llm_at") is not None:
            asked_llm.append((chat["llm_at"] - chat["asked_at"]) * 1000)
        if chat["final_at"] is not None:
            final.append((chat["final_at"] - t1) * 1000)
        flowing = [c for c in shown if t0 <= c[0] <= t1]
        updates.append(len(flowing) / max(t1 - t0, 1e-9))
        allowance.append(_allowance(chat["group"], policy, message_streams))
    starts = [c["first_token"] for c in chats.values() if c["first_token"] is not None]
    ends = [c["last_token"] for c in chats.values() if c["last_token"] is not None]
    window = [lag for t, lag in proc["lag_samples"]
              if starts and min(starts) - 1.0 <= t <= max(ends)]
    return Figures(
        answers=len(chats), finals=len(final), first_text_ms=first,
        first_text_own_rtts=own_rtts, final_ms=final,
        asked_text_ms=asked_text, asked_llm_ms=asked_llm,
        calls_per_answer=statistics.fmean(calls) if calls else 0.0,
        updates_per_s=updates, allowance_per_s=allowance, retry_after=retry_after,
        inside_window=run["inside_retry_window"], cpu_s=proc["cpu_s"],
        fakes_cpu_s=run.get("fakes_cpu_s", float("nan")),
        peak_rss_mb=proc["peak_rss_mb"], lag_p99_ms=pct(window, .99),
        lag_max_ms=max(window, default=float("nan")), lag_p99_run_ms=proc["lag_p99_ms"],
        rtt_ms=proc.get("rtt_p50_ms", 0.0), gc_s=sum(proc.get("gc_s", [])),
        gc_worst_ms=max(proc.get("gc_worst_ms", []), default=0.0),
    )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def rows(ours: Figures, base: Figures) -> list[tuple[str, str, str, str]]:
    """(metric, ours, baseline, ratio) rows for one scenario."""
    def ms(v: float) -> str:
        return "—" if v != v else f"{v / 1000:.2f} s" if v >= 1000 else f"{v:.0f} ms"

    def ratio(a: float, b: float) -> str:
        if a != a or b != b:
            return "—"
        if a == 0 and b == 0:
            return "="
        if a == 0:
            return "0 ×"
        return f"{b / a:.1f} × less" if b > a else f"{a / b:.1f} × more" if a > b else "="

    def use(f: Figures) -> str:
        if not f.updates_per_s:
            return "—"
        return (f"{statistics.median(f.updates_per_s):.2f}/s of "
                f"{statistics.median(f.allowance_per_s):.2f} "
                f"({statistics.median(f.usage):.0%}, min {min(f.usage):.0%})")

    def own(f: Figures) -> str:
        return f"{pct(f.first_text_own_rtts, .5):.2f}" if f.first_text_own_rtts else "—"

    out = [
        ("finals delivered", f"{ours.finals}/{ours.answers}", f"{base.finals}/{base.answers}", ""),
        ("first token → first text, p50", ms(pct(ours.first_text_ms, .5)),
         ms(pct(base.first_text_ms, .5)),
         ratio(pct(ours.first_text_ms, .5), pct(base.first_text_ms, .5))),
        ("first token → first text, p99", ms(pct(ours.first_text_ms, .99)),
         ms(pct(base.first_text_ms, .99)),
         ratio(pct(ours.first_text_ms, .99), pct(base.first_text_ms, .99))),
        ("first token → first text, p50, in round trips of the call that carried it",
         own(ours), own(base), ""),
        ("question → model asked, p50 / p99",
         f"{ms(pct(ours.asked_llm_ms, .5))} / {ms(pct(ours.asked_llm_ms, .99))}",
         f"{ms(pct(base.asked_llm_ms, .5))} / {ms(pct(base.asked_llm_ms, .99))}", ""),
        ("question → first text, p50 / p99",
         f"{ms(pct(ours.asked_text_ms, .5))} / {ms(pct(ours.asked_text_ms, .99))}",
         f"{ms(pct(base.asked_text_ms, .5))} / {ms(pct(base.asked_text_ms, .99))}", ""),
        ("last token → final, p50", ms(pct(ours.final_ms, .5)), ms(pct(base.final_ms, .5)),
         ratio(pct(ours.final_ms, .5), pct(base.final_ms, .5))),
        ("last token → final, max", ms(max(ours.final_ms, default=float("nan"))),
         ms(max(base.final_ms, default=float("nan"))),
         ratio(max(ours.final_ms, default=float("nan")),
               max(base.final_ms, default=float("nan")))),
        ("API calls per answer", f"{ours.calls_per_answer:.1f}", f"{base.calls_per_answer:.1f}",
         ratio(ours.calls_per_answer, base.calls_per_answer)),
        ("visible updates while tokens flow (of allowance)", use(ours), use(base), ""),
        ("429s received", str(ours.retry_after), str(base.retry_after),
         ratio(ours.retry_after, base.retry_after)),
        ("calls inside a retry window", str(ours.inside_window), str(base.inside_window),
         ratio(ours.inside_window, base.inside_window)),
        ("bot CPU", f"{ours.cpu_s:.1f} s", f"{base.cpu_s:.1f} s", ratio(ours.cpu_s, base.cpu_s)),
        ("fakes' CPU", f"{ours.fakes_cpu_s:.1f} s",
         f"{base.fakes_cpu_s:.1f} s", ""),
        ("bot peak RSS", f"{ours.peak_rss_mb:.0f} MB", f"{base.peak_rss_mb:.0f} MB",
         ratio(ours.peak_rss_mb, base.peak_rss_mb)),
        ("event-loop lag p99 while streaming", ms(ours.lag_p99_ms), ms(base.lag_p99_ms),
         ratio(ours.lag_p99_ms, base.lag_p99_ms)),
        ("event-loop lag max while streaming", ms(ours.lag_max_ms), ms(base.lag_max_ms),
         ratio(ours.lag_max_ms, base.lag_max_ms)),
        ("garbage collector: CPU / longest pause",
         f"{ours.gc_s:.1f} s / {ms(ours.gc_worst_ms)}",
         f"{base.gc_s:.1f} s / {ms(base.gc_worst_ms)}", ""),
        ("Bot API round trip p50 (bot side)", ms(ours.rtt_ms), ms(base.rtt_ms), ""),
    ]
    return out


def visible_curve(chat: dict[str, Any]) -> list[tuple[float, int]]:
    """(seconds after the first token, characters on screen) at each successful text call."""
    t0 = chat["first_token"]
    points = [(0.0, 0)]
    for at, _method, ok, _code, shown, _inside in chat["calls"]:
        if ok and shown >= 0:
            points.append((at - t0, shown))
    return points


def plot(ours: dict[str, Any], base: dict[str, Any], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    t0 = ours["first_token"]
    tokens = [(t - t0, c) for t, c in ours["token_curve"]]
    ax.plot([t for t, _ in tokens], [c for _, c in tokens], color="0.75", lw=1,
            label="generated by the model (40 tokens/s)")
    for chat, label, color in ((ours, "ours (drafts, paced to the budget)", "tab:blue"),
                               (base, "baseline (edit every 0.8 s / 24 chars)", "tab:red")):
        pts = visible_curve(chat)
        end = chat["final_at"]
        if end is not None:
            pts.append((end - chat["first_token"] + 0.5, chat["final_chars"]))
        ax.step([t for t, _ in pts], [c for _, c in pts], where="post", color=color, label=label)
        refused = [(c[0] - chat["first_token"]) for c in chat["calls"] if c[3] == 429]
        if refused:
            ax.plot(refused, [0] * len(refused), "x", color=color, ms=7,
                    label=f"{label.split(' ')[0]}: 429 Too Many Requests")
    ax.set_xlabel("seconds after the first token")
    ax.set_ylabel("characters visible to the user")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)

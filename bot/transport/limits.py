"""Telegram's limits as one chat's budget: which limiters a call spends, and how fast interim
frames may go. The scheduler (scheduler.py) decides who goes when; this module only counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from .ratelimit import Limiter, SlidingWindow, TokenBucket
from .turns import Turns

# Interim frames that may go out back to back before pacing sets in: for drafts the
# "Thinking…" placeholder and the first text; for edits the first message and the first edit.
# Each frame of burst is paid back out of the steady pace: (40 - (burst - 1)) drafts per 30 s.
# A burst of 5 (the first second of text at the manager's fastest cadence) left 1.2 drafts a
# second after it, 90 % of what the limits sustain; and with 1,000 answers starting together,
# the first to start spent their burst while the rest were still starting, and the load it
# made cut everyone's pace: in eight 1,000-chat runs 0-86 % of the chats (median 28 %) got
# less than 90 % of their allowance, against 0-7 % (median 0 %) with a burst of 2.
DRAFT_BURST = 2
EDIT_BURST = 2
# At most this many frames an answer may be owed by a busy loop (see `ChatBudget.load_delay`).
OWED_MAX = 2


class CallKind(StrEnum):
    MESSAGE = "message"  # sendMessage, editMessageText, deleteMessage: per-chat and global budget
    DRAFT = "draft"  # sendMessageDraft, sendChatAction: reported to share their own per-chat budget


@dataclass(frozen=True)
class Limits:
    """Mirrors `bot.config.LimitSettings`."""

    chat_per_second: float = 1.0
    chat_burst: int = 3
    group_per_minute: int = 20
    draft_per_5s: int = 20
    draft_per_30s: int = 40
    # Telegram's "about 30 messages per second" for the whole bot. Drafts and chat actions are
    # not messages and are limited per chat only (as far as anyone has reported).
    global_per_second: float = 30.0


@dataclass(eq=False)
class ChatBudget:
    limiters: dict[CallKind, list[Limiter]]
    pacers: dict[CallKind, TokenBucket]
    turns: Turns = field(default_factory=Turns)
    paused_until: float = 0.0
    # The grid a busy loop spaces each kind's interim frames on (see `load_delay`): the loop's
    # granted frame time (`LoopLoad.granted`) at its origin, and how many frames went since,
    # the first included. The origin is the answer's first text (the last frame not shed),
    # moved so that no frame is paid back and at most `OWED_MAX` are owed.
    grids: dict[CallKind, tuple[float, int]] = field(default_factory=dict)

    @classmethod
    def new(cls, limits: Limits, *, group: bool, now: float) -> ChatBudget:
        message: list[Limiter] = [TokenBucket(limits.chat_per_second, limits.chat_burst, now)]
        if group:
            message.append(SlidingWindow(limits.group_per_minute, 60.0))
        draft: list[Limiter] = [
            SlidingWindow(limits.draft_per_5s, 5.0),
            SlidingWindow(limits.draft_per_30s, 30.0),
        ]
        limiters = {CallKind.MESSAGE: message, CallKind.DRAFT: draft}
        return cls(limiters, {kind: _pacer(lims, kind, now) for kind, lims in limiters.items()})

    def idle(self, now: float) -> bool:
        return (
            self.turns.free
            and self.paused_until <= now
            and all(lim.idle(now) for lims in self.limiters.values() for lim in lims)
            and all(p.idle(now) for p in self.pacers.values())
        )

    def interim_delay(self, kind: CallKind, now: float) -> float:
        """Seconds until the chat's own limits let an interim frame go (may be inf)."""
        # Leave one slot of each message limit to finals, so the final never waits for frames.
        reserve = 1 if kind is CallKind.MESSAGE else 0
        return max(self.pacers[kind].delay(now),
                   *(lim.delay(now, reserve) for lim in self.limiters[kind]))

    def load_delay(self, kind: CallKind, granted: float, share: float) -> float:
        """Seconds until an interim frame may go while the loop grants `share` of their pace
        now and `granted` frame time so far (`LoopLoad.granted`); 0 or less: it may go now.

        Below a full share, frame n of an answer is due once the loop granted n frame spacings
        since its first text: `1 / share` spacings apart at a steady share. What counts is the
        share over the whole wait, not at the instant of asking: charging the gap up front, or
        judging by the share of the moment, left answers that asked in the loop's worst moments
        with no frame for the rest of their stream. And counted from the first text, not from
        the last frame, a frame that went late (its pump woke late, every connection was busy)
        or was not needed (no new text yet) does not push the rest back: the answer catches up
        at the drafts' own pace. Spaced from the last frame, at 1,000 answers a quarter got 4
        frames in 4 s (75 % of the allowance) while the median got 5."""
        grid = self.grids.get(kind)
        if share >= 1.0 or grid is None:
            return 0.0
        origin, frames = grid
        return (origin + frames * self.frame_spacing(kind) - granted) / share

    def final_delay(self, kind: CallKind, now: float) -> float:
        """Seconds until the chat's own limits let a final go (finite when nothing is in flight)."""
        return max(self.paused_until - now, *(lim.delay(now) for lim in self.limiters[kind]))

    def frame_spacing(self, kind: CallKind) -> float:
        """The pace of interim frames: when to try again after being refused for unknown time."""
        return 1 / self.pacers[kind].rate

    def begin(self, kind: CallKind, now: float, granted: float | None = None, *,
              shed: bool = True) -> list[Limiter]:
        """Spend the budget of one call granted now; `end` the returned limiters when it is back.
        `granted`: an interim frame, sent when the loop had granted this much frame time;
        `shed=False`: one that a busy loop does not hold back (an answer's first text)."""
        limiters = self.limiters[kind]
        for lim in limiters:
            lim.begin(now)
        self.pacers[kind].take(now)
        if granted is not None:
            grid = self.grids.get(kind)
            if grid is None or not shed:
                self.grids[kind] = (granted, 1)
            else:
                spacing = self.frame_spacing(kind)
                frames = grid[1] + 1
                # A frame ahead of the grid (a burst, a calm loop) is not paid back later; frames
                # owed for a long quiet spell (a model thinking) are not all paid out.
                origin = min(grid[0], granted - (frames - 1) * spacing)
                origin = max(origin, granted - (frames + OWED_MAX) * spacing)
                self.grids[kind] = (origin, frames)
        return limiters


def _pacer(limiters: list[Limiter], kind: CallKind, now: float) -> TokenBucket:
    """Interim frames at the highest rate the limits sustain, after a short burst.

    A burst must be paid back within each window, so a window of `count` per `period` leaves
    interim frames (count - reserve - (burst - 1)) per period; then the window itself never
    stops a stream mid-answer (frames stay evenly spaced instead of 20 fast ones and a pause).
    """
    burst = DRAFT_BURST if kind is CallKind.DRAFT else EDIT_BURST
    reserve = 1 if kind is CallKind.MESSAGE else 0
    rates = [
        lim.sustained if isinstance(lim, TokenBucket)
        else max(1, lim.count - reserve - (burst - 1)) / lim.period
        for lim in limiters
    ]
    return TokenBucket(min(rates), burst, now)


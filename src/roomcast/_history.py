"""Room history: the broadcasts kept for rooms that asked for it (`app.keep_history`).

A rule (`HistoryRule`) names the rooms it keeps by an `fnmatch` pattern, how many broadcasts it
keeps per room (`size`) and for how long (`ttl` seconds). The backend keeps them, so that every
process sharing it sees one history per room: `MemoryHistory` here for one process,
Redis Streams for `RedisBackend`. What is kept is bounded whatever the traffic: at most `size`
entries per room, none older than `ttl`, and a room whose last broadcast is older than `ttl`
is forgotten whole.

Offsets are opaque strings, increasing within a room; `after=offset` returns what came after.
"""

from __future__ import annotations

import collections
import fnmatch
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, NamedTuple

from ._codec import Encoded, decode, encode


class Entry(NamedTuple):
    """One kept broadcast: its offset in its room's history, its event and its data (as
    decoded from the wire, as a receiver saw it)."""

    offset: str
    event: str
    data: Any


@dataclass(frozen=True, slots=True)
class HistoryRule:
    """Keep at most `size` broadcasts of each room matching `pattern`, none older than `ttl`."""

    pattern: str
    size: int
    ttl: float

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ValueError("A history keeps at least one entry: size must be 1 or more.")
        if not self.ttl > 0:
            raise ValueError("A history's ttl must be a positive number of seconds.")


class HistoryRules:
    """The app's rules, and which one keeps a room (the first registered that matches)."""

    def __init__(self) -> None:
        self.rules: list[HistoryRule] = []
        self.rule_of: Callable[[str], HistoryRule | None] = self._no_rule

    def add(self, rule: HistoryRule) -> None:
        self.rules.append(rule)
        rules = tuple(self.rules)

        # A broadcast asks for its rooms' rule each time: the answer is remembered for the
        # most recent rooms.
        @lru_cache(maxsize=4096)
        def rule_of(room: str) -> HistoryRule | None:
            for rule in rules:
                if fnmatch.fnmatchcase(room, rule.pattern):
                    return rule
            return None

        self.rule_of = rule_of

    @staticmethod
    def _no_rule(room: str) -> HistoryRule | None:
        return None


class MemoryHistory:
    """The histories of one process's rooms, in memory (for `MemoryBackend`)."""

    def __init__(self) -> None:
        # room -> (its rule, its entries: (offset number, time, encoded [event, data])), the
        # rooms in the order of their last broadcast.
        self._rooms: collections.OrderedDict[
            str, tuple[HistoryRule, collections.deque[tuple[int, float, Encoded]]]
        ] = collections.OrderedDict()

    def append(self, room: str, rule: HistoryRule, event: str, data: Any) -> str:
        now_ns = time.monotonic_ns()
        now = now_ns / 1e9
        self._forget_idle(now)
        kept = self._rooms.get(room)
        if kept is None or kept[0] != rule:
            kept = self._rooms[room] = (rule, collections.deque(maxlen=rule.size))
        self._rooms.move_to_end(room)
        entries = kept[1]
        # Offsets increase within a room, even after it was forgotten and kept again: they
        # follow the monotonic clock, in nanoseconds.
        number = max(entries[-1][0] + 1, now_ns) if entries else now_ns
        entries.append((number, now, encode([event, data])))
        return _offset(number)

    def read(self, room: str, after: str | None, limit: int | None) -> list[Entry]:
        now = time.monotonic()
        self._forget_idle(now)
        kept = self._rooms.get(room)
        if kept is None:
            return []
        rule, entries = kept
        while entries and entries[0][1] < now - rule.ttl:
            entries.popleft()
        start = -1 if after is None else _number(after)
        chosen = [entry for entry in entries if entry[0] > start]
        if limit is not None:
            chosen = chosen[:limit] if after is not None else chosen[max(0, len(chosen) - limit) :]
        return [Entry(_offset(number), *decode(encoded)) for number, _, encoded in chosen]

    def _forget_idle(self, now: float) -> None:
        """Forget the rooms whose last broadcast is older than their rule's ttl."""
        while self._rooms:
            room, (rule, entries) = next(iter(self._rooms.items()))
            if entries and entries[-1][1] >= now - rule.ttl:
                break
            del self._rooms[room]

    def __len__(self) -> int:
        """How many rooms have a history here."""
        return len(self._rooms)


def _offset(number: int) -> str:
    return f"{number:016x}"


def _number(offset: str) -> int:
    try:
        return int(offset, 16)
    except (TypeError, ValueError):
        raise ValueError(f"Not an offset of this history: {offset!r}") from None


__all__ = ["Entry", "HistoryRule", "HistoryRules", "MemoryHistory"]

"""The default backend: one process, so nothing to carry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any

from .._exceptions import ConnectionClosed
from .._history import Entry, HistoryRule, MemoryHistory
from .._message import Outgoing, Target
from .._presence import Track
from ._base import Backend


class MemoryBackend(Backend):
    """For a single process: the core's own rooms and presences are the whole answer; the
    rooms' histories are kept here, in memory."""

    def __init__(self) -> None:
        self._history = MemoryHistory()

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        yield

    async def publish(self, target: Target, message: Outgoing) -> None:
        pass  # no other process

    async def add(self, sid: str) -> None:
        pass

    async def remove(self, sid: str, rooms: Collection[str]) -> None:
        pass

    async def join(self, sid: str, room: str) -> None:
        pass

    async def leave(self, sid: str, room: str) -> None:
        pass

    async def members(self, room: str) -> frozenset[str]:
        return frozenset(self.node.local_members(room))

    async def rooms_of(self, sid: str) -> frozenset[str]:
        return self.node.local_rooms_of(sid)

    async def track(self, room: str, track: Track, replaces: Track | None) -> None:
        pass

    async def untrack(self, room: str, track: Track) -> None:
        pass

    async def presence(self, room: str) -> list[Track]:
        return self.node.local_presence(room)

    async def keep(self, room: str, rule: HistoryRule, event: str, data: Any) -> None:
        self._history.append(room, rule, event, data)

    async def history(
        self, room: str, rule: HistoryRule, after: str | None, limit: int | None
    ) -> list[Entry]:
        return self._history.read(room, after, limit)

    async def dropped(self, pid: str, ttl: float) -> None:
        pass  # recovered here, if at all

    async def recover(self, pid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        raise ConnectionClosed("No other process holds a dropped connection.")

    async def command(self, sid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        raise ConnectionClosed(f"No connection {sid!r} is open.")

    def __repr__(self) -> str:
        return "<MemoryBackend>"

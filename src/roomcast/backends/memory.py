"""The default backend: one process, so nothing to carry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

from .._message import Outgoing, Target
from ._base import Backend


class MemoryBackend(Backend):
    """For a single process: the core's own rooms are the whole answer."""

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

    def __repr__(self) -> str:
        return "<MemoryBackend>"

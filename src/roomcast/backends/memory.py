"""The default backend: room state in this process's memory."""

from __future__ import annotations

from collections.abc import Collection, Set

from .._message import Outgoing, Target
from .._rooms import EVERYONE, Members, RoomIndex
from ._base import Backend, Deliver


class MemoryBackend(Backend):
    """Rooms for a single process. Every operation completes without waiting."""

    def __init__(self) -> None:
        self._index = RoomIndex()
        # Every connection, as a `Members` so that the app keeps their receivers resolved
        # between broadcasts to everyone, as it does for a room's.
        self._connections = Members(EVERYONE)

    @property
    def index(self) -> RoomIndex:
        """The membership of this process's connections."""
        return self._index

    @property
    def connections(self) -> Set[str]:
        """The connections of this process: a live view."""
        return self._connections.keys()

    @property
    def everyone(self) -> Members:
        """The connections of this process, for delivering to: not to be changed."""
        return self._connections

    async def open(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def add(self, sid: str) -> None:
        if sid not in self._connections:
            self._connections[sid] = None
            self._connections.fanout = None

    async def remove(self, sid: str) -> frozenset[str]:
        if self._connections.pop(sid, False) is None:
            self._connections.fanout = None
        return self._index.remove(sid)

    async def join(self, sid: str, room: str) -> None:
        if sid in self._connections:
            self._index.join(sid, room)

    async def leave(self, sid: str, room: str) -> None:
        self._index.leave(sid, room)

    async def members(self, room: str) -> frozenset[str]:
        return frozenset(self._index.members(room))

    async def rooms_of(self, sid: str) -> frozenset[str]:
        return self._index.rooms_of(sid)

    def local_rooms(self, sid: str) -> frozenset[str]:
        return self._index.rooms_of(sid)

    async def publish(self, target: Target, message: Outgoing) -> None:
        receivers: Collection[str]
        if target.sid is not None:
            receivers = {target.sid} if target.sid in self._connections else frozenset()
        elif target.rooms is None:
            receivers = self._connections
        elif len(target.rooms) == 1:
            (room,) = target.rooms
            receivers = self._index.room(room) or ()
        else:
            receivers = self._index.union(target.rooms)
        if receivers:
            await self._deliver(receivers, message, target.exclude)

    def __repr__(self) -> str:
        return f"<MemoryBackend connections={len(self._connections)} rooms={len(self._index)}>"

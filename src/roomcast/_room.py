"""A handle on one or several rooms."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from ._history import Entry
from ._message import Outgoing, Target, pack


class Rooms(Protocol):
    """What a room handle needs from the app's core (`Hub` implements it)."""

    def check_room_name(self, name: Any) -> str:
        """Return `name` if it is a valid room name here, else raise `InvalidRoomName`."""

    async def publish(self, target: Target, message: Outgoing) -> None:
        """Send `message` to every connection `target` names, in every process."""

    async def members(self, rooms: Collection[str]) -> frozenset[str]:
        """The sids in any of `rooms`, across every process."""

    async def presence(self, room: str) -> dict[str, list[dict[str, Any]]]:
        """Who is present in `room`, across every process."""

    async def room_history(self, room: str, after: str | None, limit: int | None) -> list[Entry]:
        """The kept broadcasts of `room`, oldest first."""


class Room:
    """One room, or the union of several, as seen by the app or by a request.

    Obtained with `app.room(*names)` (every member receives) or `req.room(*names)` (the sender
    is left out). A connection in several of the rooms receives one copy of a broadcast.
    """

    __slots__ = ("_host", "_target", "exclude", "names")

    def __init__(self, host: Rooms, names: tuple[str, ...], exclude: str | None = None) -> None:
        if not names:
            raise TypeError("room() needs at least one room name.")
        self._host = host
        if len(names) == 1:
            self.names = frozenset((host.check_room_name(names[0]),))
        else:
            self.names = frozenset([host.check_room_name(name) for name in names])
        self.exclude = exclude
        self._target = Target(rooms=self.names, exclude=exclude)

    async def broadcast(self, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` to every member (but `exclude`, when set); with `more`, as several
        arguments."""
        await self._host.publish(self._target, Outgoing(event, pack(data, more)))

    async def members(self) -> frozenset[str]:
        """The sids of every member, across every process sharing the backend."""
        return await self._host.members(self.names)

    async def presence(self) -> dict[str, list[dict[str, Any]]]:
        """Who is present in the room, on every process: each key, and the metas of every
        connection tracked under it (each with its `"ref"`), oldest first. For one room only.
        """
        return await self._host.presence(self._one("presence"))

    async def history(self, after: str | None = None, limit: int | None = None) -> list[Entry]:
        """The broadcasts kept for the room (see `app.keep_history`), oldest first, as
        `Entry(offset, event, data)`; `[]` for a room no rule keeps. With `after` (an offset),
        only what came after it, the first `limit` of those; without, the latest `limit`.
        For one room only. Raises `ValueError` for an offset that is not one of this history's.
        """
        return await self._host.room_history(self._one("history"), after, limit)

    def _one(self, what: str) -> str:
        if len(self.names) != 1:
            raise TypeError(f"{what}() is for one room; this handle names several.")
        (name,) = self.names
        return name

    async def count(self) -> int:
        """How many connections are members."""
        return len(await self.members())

    def __repr__(self) -> str:
        names = ", ".join(repr(name) for name in sorted(self.names))
        return f"<Room {names}>"

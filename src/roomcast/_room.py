"""A handle on one or several rooms."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._message import Outgoing, Target

if TYPE_CHECKING:
    from ._app import App


class Room:
    """One room, or the union of several, as seen by the app or by a request.

    Obtained with `app.room(*names)` (every member receives) or `req.room(*names)` (the sender
    is left out). A connection in several of the rooms receives one copy of a broadcast.
    """

    __slots__ = ("_app", "_target", "exclude", "names")

    def __init__(self, app: App, names: tuple[str, ...], exclude: str | None = None) -> None:
        if not names:
            raise TypeError("room() needs at least one room name.")
        self._app = app
        if len(names) == 1:
            self.names = frozenset((app.check_room_name(names[0]),))
        else:
            self.names = frozenset([app.check_room_name(name) for name in names])
        self.exclude = exclude
        self._target = Target(rooms=self.names, exclude=exclude)

    async def broadcast(self, event: str, data: Any = None) -> None:
        """Send `event` to every member (but `exclude`, when set)."""
        await self._app.backend.publish(self._target, Outgoing(event, data))

    async def members(self) -> frozenset[str]:
        """The sids of every member, across every process sharing the backend."""
        backend = self._app.backend
        if len(self.names) == 1:
            (name,) = self.names
            return await backend.members(name)
        members: set[str] = set()
        for name in self.names:
            members |= await backend.members(name)
        return frozenset(members)

    async def count(self) -> int:
        """How many connections are members."""
        return len(await self.members())

    def __repr__(self) -> str:
        names = ", ".join(repr(name) for name in sorted(self.names))
        return f"<Room {names}>"

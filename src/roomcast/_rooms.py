"""Room membership as plain data: who is in which room, indexed both ways.

Every piece of membership state lives in the two dicts of `RoomIndex`; they always mirror
each other, and a room exists exactly while it has members. Join, leave and remove cost
O(rooms of that connection), never a scan of all rooms.

A room's members are a `Members`: its sids in the order they joined (so that a broadcast
to a large room visits connections roughly in the order they were made, which is kinder to
the CPU's caches than hash order), and whatever its deliverer derived from them
(`Members.fanout`: the app keeps its receivers there, resolved to what each transport sends
to). The index drops that whenever the members change, so it is never stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Set
from typing import Any

from ._exceptions import InvalidRoomName

DEFAULT_MAX_ROOM_NAME = 256

_EMPTY: frozenset[str] = frozenset()


def check_room_name(name: Any, max_length: int = DEFAULT_MAX_ROOM_NAME) -> str:
    """Return `name` if it is a valid room name, else raise `InvalidRoomName`."""
    if not isinstance(name, str):
        raise InvalidRoomName(f"A room name must be a string, not {type(name).__name__}.")
    if not name:
        raise InvalidRoomName("A room name must not be empty.")
    if len(name) > max_length:
        raise InvalidRoomName(f"A room name must be at most {max_length} characters long.")
    return name


EVERYONE = ""
"""The name of the `Members` of every connection: no room can have it (names are not empty)."""


class Members(dict[str, None]):
    """The sids in one room (its keys, in the order they joined), and what was derived from
    them since they last changed. Only `RoomIndex` changes it."""

    __slots__ = ("fanout", "name")

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.fanout: Any = None
        """Set by whoever delivers to the room; reset to `None` by the index on every change."""

    def __reduce__(self) -> Any:  # a plain dict when copied or pickled
        return (dict, (dict(self),))


class RoomIndex:
    """Membership of connections (by sid) in rooms (by name)."""

    __slots__ = ("_members", "_rooms")

    def __init__(self) -> None:
        self._members: dict[str, Members] = {}  # room -> sids
        self._rooms: dict[str, set[str]] = {}  # sid -> rooms

    def join(self, sid: str, room: str) -> bool:
        """Put `sid` in `room`; return whether it was not there already."""
        rooms = self._rooms.setdefault(sid, set())
        if room in rooms:
            return False
        rooms.add(room)
        members = self._members.get(room)
        if members is None:
            members = self._members[room] = Members(room)
        members[sid] = None
        members.fanout = None
        return True

    def leave(self, sid: str, room: str) -> bool:
        """Take `sid` out of `room`; return whether it was there."""
        rooms = self._rooms.get(sid)
        if rooms is None or room not in rooms:
            return False
        rooms.discard(room)
        if not rooms:
            del self._rooms[sid]
        members = self._members[room]
        del members[sid]
        members.fanout = None
        if not members:
            del self._members[room]
        return True

    def remove(self, sid: str) -> frozenset[str]:
        """Take `sid` out of every room; return the rooms it was in."""
        rooms = self._rooms.pop(sid, None)
        if not rooms:
            return _EMPTY
        for room in rooms:
            members = self._members[room]
            del members[sid]
            members.fanout = None
            if not members:
                del self._members[room]
        return frozenset(rooms)

    def members(self, room: str) -> Set[str]:
        """The sids in `room`: a live view."""
        members = self._members.get(room)
        return _EMPTY if members is None else members.keys()

    def room(self, room: str) -> Members | None:
        """The members of `room`, for delivering to them; `None` when it has none. Not to be
        changed by the caller."""
        return self._members.get(room)

    def rooms_of(self, sid: str) -> frozenset[str]:
        """The rooms `sid` is in."""
        rooms = self._rooms.get(sid)
        return frozenset(rooms) if rooms else _EMPTY

    def union(self, rooms: Iterable[str]) -> set[str]:
        """The sids in any of `rooms`, each once."""
        result: set[str] = set()
        for room in rooms:
            members = self._members.get(room)
            if members:
                result.update(members)
        return result

    def rooms(self) -> frozenset[str]:
        """Every room that has members."""
        return frozenset(self._members)

    def __len__(self) -> int:
        """The number of rooms that have members."""
        return len(self._members)

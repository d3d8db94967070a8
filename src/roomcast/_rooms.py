"""This process's connections and rooms, as plain data: the one index the core delivers from.

`LocalRooms` holds every connection of this process and, for each room with members here, a
`Members`: the room's connections in the order they joined, each with its transport's handle
on it (its *peer*), as python-socketio's manager keeps each member's delivery handle with its
membership. The other direction, a connection's rooms, is `Connection.rooms`. Only
`LocalRooms` changes either, so both always agree, and a room exists exactly while it has
members here. Join, leave and remove cost O(rooms of that connection).

A broadcast to a room hands each transport the members' peers as one tuple (`Members.groups`),
made on the first broadcast after the members last changed and kept until they change again:
a broadcast to an unchanged room does no per-receiver work here at all. The tuple lives beside
the members it was made from and is dropped by the same method that changes them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Set
from typing import Any

from ._connection import Connection
from ._exceptions import InvalidRoomName
from ._limits import is_utf8
from ._message import Target
from ._presence import Track
from ._transport import Transport

DEFAULT_MAX_ROOM_NAME = 256

Group = tuple[Transport, tuple[Any, ...]]
"""Receivers on one transport: the transport, and the peers to `send` to."""

_EMPTY: frozenset[str] = frozenset()


def check_room_name(name: Any, max_length: int = DEFAULT_MAX_ROOM_NAME) -> str:
    """Return `name` if it is a valid room name, else raise `InvalidRoomName`."""
    if not isinstance(name, str):
        raise InvalidRoomName(f"A room name must be a string, not {type(name).__name__}.")
    if not name:
        raise InvalidRoomName("A room name must not be empty.")
    if len(name) > max_length:
        raise InvalidRoomName(f"A room name must be at most {max_length} characters long.")
    if not is_utf8(name):
        raise InvalidRoomName("A room name must be valid Unicode text (no lone surrogates).")
    return name


class Members:
    """The connections in one room (or every connection), in the order they joined, and the
    peers a broadcast to them hands each transport. Only `LocalRooms` changes it."""

    __slots__ = ("_conns", "_groups", "_positions")

    def __init__(self) -> None:
        self._conns: dict[str, Connection] = {}
        self._groups: list[Group] | None = None
        self._positions: dict[str, tuple[int, int]] | None = None

    def _add(self, conn: Connection) -> None:
        self._conns[conn.sid] = conn
        self._groups = self._positions = None

    def _discard(self, sid: str) -> None:
        if self._conns.pop(sid, None) is not None:
            self._groups = self._positions = None

    def groups(self, exclude: str | None = None) -> list[Group]:
        """The members' peers, one tuple per transport, but the connection `exclude`."""
        groups = self._groups
        if groups is None:
            groups = self._groups = group(self._conns.values())
        if exclude is None or exclude not in self._conns:
            return groups
        if self._positions is None:  # made on the first broadcast that leaves someone out
            self._positions = {}
            for g, (transport, _) in enumerate(groups):
                sids = [sid for sid, conn in self._conns.items() if conn.transport is transport]
                self._positions.update((sid, (g, i)) for i, sid in enumerate(sids))
        g, i = self._positions[exclude]
        transport, peers = groups[g]
        groups = groups.copy()
        groups[g] = (transport, peers[:i] + peers[i + 1 :])
        return groups

    @property
    def sids(self) -> Set[str]:
        """The members' sids: a live view."""
        return self._conns.keys()

    def __contains__(self, sid: object) -> bool:
        return sid in self._conns

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Connection]:
        return iter(self._conns.values())


def group(conns: Iterable[Connection]) -> list[Group]:
    """`conns`' peers grouped by transport, in order."""
    groups: dict[Transport, list[Any]] = {}
    for conn in conns:
        peers = groups.get(conn.transport)
        if peers is None:
            peers = groups[conn.transport] = []
        peers.append(conn.peer)
    return [(transport, tuple(peers)) for transport, peers in groups.items()]


class LocalRooms:
    """Every connection of this process, and who of them is in which room."""

    __slots__ = ("_present", "_rooms", "connections", "everyone")

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        """Every connection by sid, from opening until closed."""
        self.everyone = Members()
        """The connections that are sent events (not closing)."""
        self._rooms: dict[str, Members] = {}
        self._present: dict[str, dict[str, Track]] = {}
        """Each room's tracks here, by ref, oldest first."""

    def add(self, conn: Connection) -> None:
        """Start serving `conn`."""
        if conn.sid in self.connections:
            raise ValueError(f"The connection {conn.sid!r} is already open.")
        self.connections[conn.sid] = conn
        self.everyone._add(conn)

    def join(self, conn: Connection, room: str) -> bool:
        """Put `conn` in `room`; return whether it was not there already."""
        if room in conn.rooms or not conn.reachable:
            return False
        conn.rooms.add(room)
        members = self._rooms.get(room)
        if members is None:
            members = self._rooms[room] = Members()
        members._add(conn)
        return True

    def leave(self, conn: Connection, room: str) -> bool:
        """Take `conn` out of `room`; return whether it was there."""
        if room not in conn.rooms or not conn.reachable:
            return False
        conn.rooms.discard(room)
        self._leave(conn.sid, room)
        return True

    def detach(self, conn: Connection) -> frozenset[str]:
        """Stop sending `conn` anything: take it out of every room (its `rooms` stay as they
        were, for its disconnect hooks); return those rooms."""
        self.everyone._discard(conn.sid)
        for room in conn.rooms:
            self._leave(conn.sid, room)
        return frozenset(conn.rooms)

    def remove(self, conn: Connection) -> None:
        """Forget `conn` (detached first)."""
        self.detach(conn)
        self.connections.pop(conn.sid, None)

    def _leave(self, sid: str, room: str) -> None:
        members = self._rooms.get(room)
        if members is not None:
            members._discard(sid)
            if not members:
                del self._rooms[room]

    def track(self, conn: Connection, room: str, track: Track) -> Track | None:
        """Make `track` `conn`'s presence in `room` (a member); return the one it replaces."""
        if conn.tracks is None:
            conn.tracks = {}
        old = conn.tracks.get(room)
        conn.tracks[room] = track
        present = self._present.setdefault(room, {})
        if old is not None:
            present.pop(old.ref, None)
        present[track.ref] = track
        return old

    def untrack(self, conn: Connection, room: str) -> Track | None:
        """End `conn`'s presence in `room`; return it (`None` if it had none)."""
        track = None if conn.tracks is None else conn.tracks.pop(room, None)
        if track is not None:
            present = self._present[room]
            del present[track.ref]
            if not present:
                del self._present[room]
        return track

    def presence(self, room: str) -> list[Track]:
        """The tracks in `room` here, oldest first."""
        present = self._present.get(room)
        return [] if present is None else list(present.values())

    def tracks(self) -> Iterator[tuple[str, Track]]:
        """Every track here, with its room."""
        for room, present in list(self._present.items()):
            for track in list(present.values()):
                yield room, track

    def members(self, room: str) -> Set[str]:
        """The sids in `room` here: a live view."""
        members = self._rooms.get(room)
        return _EMPTY if members is None else members.sids

    def rooms(self) -> Collection[str]:
        """Every room with members here: a live view."""
        return self._rooms.keys()

    def receivers(self, target: Target, unless_in: Collection[str] = ()) -> list[Group]:
        """The peers `target` names here, each once, grouped by transport; leaving out the
        members of the rooms `unless_in`."""
        exclude = target.exclude
        if target.sid is not None:
            conn = self.connections.get(target.sid)
            if conn is None or not conn.reachable or target.sid == exclude:
                return []
            return [(conn.transport, (conn.peer,))]
        if target.rooms is None:
            return self.everyone.groups(exclude)
        if len(target.rooms) == 1 and not unless_in:
            (room,) = target.rooms
            members = self._rooms.get(room)
            return [] if members is None else members.groups(exclude)
        seen: dict[str, Connection] = {}
        for room in sorted(target.rooms):
            members = self._rooms.get(room)
            if members is not None:
                for conn in members:
                    seen.setdefault(conn.sid, conn)
        for room in unless_in:
            for sid in self.members(room):
                seen.pop(sid, None)
        if exclude is not None:
            seen.pop(exclude, None)
        return group(seen.values())

    def __len__(self) -> int:
        """The number of rooms with members here."""
        return len(self._rooms)


__all__ = ["DEFAULT_MAX_ROOM_NAME", "Group", "LocalRooms", "Members", "check_room_name", "group"]

"""The core's side of connection-state recovery: giving a dropped connection back.

`_recovery.py` holds this process's log and its dropped connections (`Recovery`). This module
does, with the hub's rooms and the backend, what a recovery takes:

- a connection that dropped from this process comes back here (`restore`): its rooms, its
  session and the events it missed, before anything else can reach it;
- it dropped from another process (`restore_from`): this one joins its rooms in the backend,
  watches what is broadcast to them here meanwhile (`saw`), and fetches from that process what
  it missed there;
- another process asks this one for a connection that dropped from here (`answer`: `claim`,
  `missed`), and this one asks another (`claim`);
- while a connection drops (`dropping`), is dropped or is being recovered, its rooms'
  broadcasts are still wanted here though no connection here is in them (`keeps`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ._connection import Connection
from ._exceptions import BackendUnavailable, ConnectionClosed
from ._message import Outgoing, Target
from ._recovery import Absent, Claim, Recovery, is_private_id, reaches
from ._rooms import LocalRooms
from .backends import Backend

__all__ = ["Resumption"]

logger = logging.getLogger("roomcast")


class Resumption:
    """What a hub does to recover connections, around its `Recovery` log (`log`)."""

    def __init__(self, log: Recovery, index: LocalRooms, backend: Backend) -> None:
        self.log = log
        self._index = index
        self._backend = backend
        self._leaving: dict[str, frozenset[str]] = {}
        """The rooms of connections dropping now, whose broadcasts are still wanted here."""
        self._watching: dict[str, tuple[frozenset[str], list[Outgoing]]] = {}
        """Connections being recovered from another process: their rooms, and what was
        broadcast to those rooms here meanwhile."""

    async def restore(self, conn: Connection, claim: Claim) -> list[str]:
        """Give `conn` back its session and rooms, and hand its transport the events it
        missed, before anything else can reach it: it joins its rooms and the missed events
        are found with nothing awaited in between, and transports hand events over without
        waiting (`Transport.send`), so no broadcast comes between. Return its rooms, for the
        backend."""
        conn.recovered = True
        conn.session = claim.absent.session
        rooms = [room for room in sorted(claim.absent.rooms) if self._index.join(conn, room)]
        transport, peers = conn.transport, (conn.peer,)
        for message in self.log.missed(claim):
            await transport.send(peers, message.encoded(transport))
        return rooms

    async def restore_from(self, origin: str, conn: Connection, claim: Claim) -> None:
        """Recover `conn`, which dropped from another process: join its rooms in the backend
        (this process now receives their broadcasts, which it watches for it), fetch from that
        process the events it missed there, then join its rooms here and send it those events
        followed by the ones watched here that they do not hold (by cluster id), in order,
        with nothing awaited between the join and the choice of what to send."""
        conn.recovered = True
        conn.session = claim.absent.session
        sid, rooms = conn.sid, sorted(claim.absent.rooms)
        self._watching[sid] = (claim.absent.rooms, [])
        try:
            for room in rooms:
                await self._backend.join(sid, room)
            args = (sid, rooms, claim.number)
            try:
                there = await self._backend.recover(claim.pid, "missed", args, timeout=0.0)
            except Exception:
                logger.exception("Recovering %s: the events missed on %s are lost", sid, origin)
                there = []
        finally:
            _, here = self._watching.pop(sid)
        for room in rooms:
            self._index.join(conn, room)
        held = {mid for _, _, mid in there}
        missed = [Outgoing(event, data, mid=mid) for event, data, mid in there]
        missed += [Outgoing(m.event, m.data, mid=m.mid) for m in here if m.mid not in held]
        transport, peers = conn.transport, (conn.peer,)
        for message in missed:
            self.log.record(Target(sid=sid), message)  # an offset of this process's
            await transport.send(peers, message.encoded(transport))

    def saw(self, target: Target, unless_in: Collection[str], message: Outgoing) -> None:
        """`message` was delivered here to `target`: keep it for the connections being
        recovered from another process that it reaches."""
        for sid, (rooms, seen) in self._watching.items():
            if reaches(target, unless_in, sid, rooms):
                seen.append(message)

    @contextmanager
    def dropping(self, sid: str, rooms: frozenset[str]) -> Iterator[None]:
        """While the connection `sid` drops: its `rooms`' broadcasts are still wanted."""
        self._leaving[sid] = rooms
        try:
            yield
        finally:
            del self._leaving[sid]

    async def claim(self, pid: Any, offset: Any) -> Claim | None:
        """Claim the dropped connection of the private id `pid`, here or on the process that
        holds it (see `Recovery.claim`); `None` when nothing can be given back."""
        claim = self.log.claim(pid, offset)
        if claim is not None or not is_private_id(pid):
            return claim
        try:
            found = await self._backend.recover(pid, "claim", (pid, offset), timeout=0.0)
        except ConnectionClosed:
            return None
        except (TimeoutError, BackendUnavailable) as exc:
            # The process it dropped from is gone, or Redis is: it connects afresh.
            logger.warning("A dropped connection could not be claimed: %r", exc)
            return None
        except Exception:
            logger.exception("Could not claim a dropped connection from another process")
            return None
        if found is None:
            return None
        absent = Absent(found["sid"], pid, frozenset(found["rooms"]), found["session"], 0, 0.0)
        return Claim(absent, found["number"], found["node"])

    def answer(self, command: str, args: Sequence[Any]) -> Any:
        """Another process recovers a connection that dropped from this one: `claim` takes
        its record, `missed` lists the events it missed here."""
        if command == "claim":
            claim = self.log.claim(*args)
            if claim is None:
                return None
            absent = claim.absent
            return {
                "sid": absent.sid,
                "rooms": sorted(absent.rooms),
                "session": absent.session,
                "number": claim.number,
                "node": self.log.epoch,
            }
        if command == "missed":
            sid, rooms, number = args
            claim = Claim(Absent(sid, "", frozenset(rooms), {}, 0, 0.0), number)
            return [[m.event, m.data, m.mid] for m in self.log.missed(claim)]
        raise ValueError(f"Unknown command {command!r}.")

    def keeps(self, room: str) -> bool:
        """Whether `room`'s broadcasts are wanted here though no connection here is in it: a
        connection dropping, dropped (it may come back) or being recovered is."""
        if self.log.keeps(room):
            return True
        watched = (*self._leaving.values(), *(rooms for rooms, _ in self._watching.values()))
        return any(room in rooms for rooms in watched)

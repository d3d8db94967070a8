"""Connection-state recovery: what a dropped connection gets back when it returns in time.

While a transport recovers connections (`attach(app, sio, recovery=seconds)`), every event the
app sends gets an offset, the same for every receiver (so a broadcast is still encoded once),
and goes into one log of this process, kept for the recovery window and bounded in entries and
bytes. A connection that drops (not a disconnect it asked for) leaves an `Absent` record under
its private id: its sid, its rooms, its session. If the client comes back within the window
with that private id and the offset of the last event it received, it gets its sid, rooms and
session back, and every event of the log after that offset that was addressed to it: to it,
to everyone, or to one of its rooms, in order, once each. A private id is usable once; a
forged, expired or reused one, or an offset the log no longer reaches, gives nothing back: the
client connects afresh.

Offsets are `"<epoch>-<n>"`: `epoch` is random per process start, so an offset from another
process, or from before a restart, is refused rather than misread.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from ._message import Outgoing, Target

logger = logging.getLogger("roomcast")

MAX_LOG_ENTRIES = 100_000
"""Events kept in the log at most, whatever the window."""
MAX_LOG_BYTES = 64 * 1024 * 1024
"""Bytes of encoded events kept in the log at most."""
MAX_ABSENT = 10_000
"""Absent sessions kept at most; past it, the oldest is forgotten."""
MAX_ABSENT_BYTES = 16 * 1024 * 1024
"""Bytes of the room names of absent sessions kept at most (their sessions are the app's)."""


@dataclass(slots=True)
class Absent:
    """A dropped connection waiting to be recovered."""

    sid: str
    pid: str
    rooms: frozenset[str]
    session: dict[str, Any]
    since: int
    """The number of the last event logged before it opened, when it received none."""
    expires: float
    size: int = 0


@dataclass(slots=True)
class Claim:
    """A dropped connection being recovered: its record, and the number of the last event its
    client received, in the log of the process it dropped from: this one, or `origin` (the
    backend's name for another process, which keeps the events it missed)."""

    absent: Absent
    number: int
    origin: str | None = None

    @property
    def sid(self) -> str:
        return self.absent.sid

    @property
    def pid(self) -> str:
        return self.absent.pid


class Recovery:
    """The log of what this process sent, and the dropped connections it may give back.

    `size_of(message)` is the size of an event as the recovering transport encodes it (which
    also encodes it once, for every receiver).
    """

    def __init__(
        self,
        window: float,
        size_of: Callable[[Outgoing], int],
        *,
        max_entries: int = MAX_LOG_ENTRIES,
        max_bytes: int = MAX_LOG_BYTES,
        max_absent: int = MAX_ABSENT,
        max_absent_bytes: int = MAX_ABSENT_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not window > 0:
            raise ValueError("The recovery window must be a positive number of seconds.")
        self.window = window
        self.size_of = size_of
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_absent = max_absent
        self.max_absent_bytes = max_absent_bytes
        self.clock = clock
        self.epoch = secrets.token_hex(4)
        self.number = 0
        """The number of the last event logged."""
        self._log: collections.deque[tuple[int, float, int, Target, Collection[str], Outgoing]] = (
            collections.deque()
        )
        self.log_bytes = 0
        self._absent: collections.OrderedDict[str, Absent] = collections.OrderedDict()
        self.absent_bytes = 0
        self._kept_rooms: collections.Counter[str] = collections.Counter()

    # -- the log -------------------------------------------------------------------------------

    def record(self, target: Target, message: Outgoing, unless_in: Collection[str] = ()) -> None:
        """Give `message` its offset (and its id in the cluster, if it has none yet: it was
        published here) and keep it, with who it was for: `target`, but the members of the
        rooms `unless_in`."""
        self.number += 1
        message.offset = f"{self.epoch}-{self.number:x}"
        if message.mid is None:
            message.mid = message.offset
        size = self.size_of(message)
        now = self.clock()
        self._log.append((self.number, now, size, target, unless_in, message))
        self.log_bytes += size
        self._trim(now)

    def _trim(self, now: float) -> None:
        log = self._log
        while log and (
            len(log) > self.max_entries
            or self.log_bytes > self.max_bytes
            or log[0][1] < now - self.window
        ):
            self.log_bytes -= log.popleft()[2]

    def _number(self, offset: Any) -> int | None:
        """The number of an offset of this process's log, or `None`."""
        if not isinstance(offset, str):
            return None
        epoch, _, number = offset.partition("-")
        if epoch != self.epoch or not 0 < len(number) <= 16:
            return None
        try:
            value = int(number, 16)
        except ValueError:
            return None
        return value if 0 < value <= self.number else None

    def _after(self, number: int) -> Iterator[tuple[Target, Collection[str], Outgoing]] | None:
        """The logged events after `number`, or `None` when the log no longer reaches it."""
        log = self._log
        first = log[0][0] if log else self.number + 1
        if number < first - 1:
            return None
        # Entries are numbered one after the other: those after `number` are the last ones,
        # found from the end (a recovery costs what it missed, not the whole log).
        tail = []
        for n, _, _, target, unless, message in reversed(log):
            if n <= number:
                break
            tail.append((target, unless, message))
        tail.reverse()
        return iter(tail)

    # -- absent sessions -----------------------------------------------------------------------

    def new_pid(self) -> str:
        """A private id for a new connection: unguessable."""
        return secrets.token_urlsafe(16)

    def dropped(
        self, sid: str, pid: str, rooms: frozenset[str], session: dict[str, Any], since: int
    ) -> None:
        """Keep the record of a connection that dropped, for the window."""
        now = self.clock()
        self._expire(now)
        absent = Absent(sid, pid, rooms, session, since, now + self.window)
        absent.size = 64 + len(sid) + len(pid) + sum(len(room) + 8 for room in rooms)
        self._absent[pid] = absent
        self.absent_bytes += absent.size
        self._kept_rooms.update(rooms)
        while self._absent and (
            len(self._absent) > self.max_absent or self.absent_bytes > self.max_absent_bytes
        ):
            self._forget(next(iter(self._absent)))

    def claim(self, pid: Any, offset: Any) -> Claim | None:
        """Take the record of `pid` (usable once), if the events it missed after `offset`
        (the last event its client received; `None` when it received none) are all still in
        the log; else `None`: nothing can be given back."""
        now = self.clock()
        self._expire(now)
        self._trim(now)
        if not is_private_id(pid):
            return None
        absent = self._absent.get(pid)
        if absent is None:
            return None
        self._forget(pid)
        number = absent.since if offset is None else self._number(offset)
        if number is None or self._after(number) is None:
            return None
        return Claim(absent, number)

    def missed(self, claim: Claim) -> list[Outgoing]:
        """The events logged after the claim's offset that were addressed to its connection,
        in order (to be sent as it rejoins its rooms, before anything else can reach it)."""
        events = self._after(claim.number)
        if events is None:  # the log moved past it since the claim: rare, but said
            logger.warning("Recovering %s: some missed events had left the log.", claim.sid)
            events = self._after(self._log[0][0] - 1) if self._log else iter(())
        assert events is not None
        absent = claim.absent
        return [
            m for target, unless, m in events if reaches(target, unless, absent.sid, absent.rooms)
        ]

    def keeps(self, room: str) -> bool:
        """Whether a dropped connection that may come back is in `room` (its broadcasts are
        still wanted here, to be kept for it)."""
        self._expire(self.clock())
        return self._kept_rooms[room] > 0

    def _expire(self, now: float) -> None:
        while self._absent:
            pid, absent = next(iter(self._absent.items()))
            if absent.expires > now:
                break
            self._forget(pid)

    def _forget(self, pid: str) -> None:
        absent = self._absent.pop(pid)
        self.absent_bytes -= absent.size
        self._kept_rooms.subtract(absent.rooms)
        for room in absent.rooms:
            if self._kept_rooms[room] <= 0:
                del self._kept_rooms[room]

    @property
    def absent(self) -> int:
        """How many dropped connections may still be recovered."""
        return len(self._absent)

    @property
    def logged(self) -> int:
        """How many events the log holds."""
        return len(self._log)


MAX_PRIVATE_ID = 64
"""The longest private id looked for (those given out are 22 characters)."""


def is_private_id(pid: Any) -> bool:
    """Whether `pid` may be a private id: what a client sends is not looked up otherwise (not
    here, not in Redis)."""
    return isinstance(pid, str) and 0 < len(pid) <= MAX_PRIVATE_ID


def reaches(target: Target, unless_in: Collection[str], sid: str, rooms: frozenset[str]) -> bool:
    """Whether an event for `target` (but the members of `unless_in`) is for the connection
    `sid`, a member of `rooms`."""
    if target.exclude == sid:
        return False
    if target.sid is not None:
        return target.sid == sid
    if unless_in and not rooms.isdisjoint(unless_in):
        return False
    return target.rooms is None or not target.rooms.isdisjoint(rooms)


__all__ = ["MAX_PRIVATE_ID", "Absent", "Claim", "Recovery", "is_private_id", "reaches"]

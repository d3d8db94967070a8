"""The seam between this process and the others: what a backend carries, and what it asks.

The core keeps this process's connections, rooms and presences, and delivers to them itself.
A backend only carries between processes: it takes a broadcast to the others (`publish`),
hands what they broadcast to this process's core (`Node.deliver`), mirrors joins, leaves and
tracks so that `members`, `rooms_of` and `presence` answer for every process, and carries the
server's commands on a connection (`app.join`, `app.call`, ...) to the process that holds it
(`command`, answered there by `Node.perform`). Its background work runs inside `run()`,
the one async context the app enters (`async with app:`, or `app.start()`/`app.stop()`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence, Set
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

from .._history import Entry, HistoryRule
from .._message import Outgoing, Target
from .._presence import Track


class Node(Protocol):
    """This process's core, as its backend sees it."""

    async def deliver(
        self, target: Target, message: Outgoing, *, unless_in: Collection[str] = ()
    ) -> None:
        """Send a message from another process to the connections here that `target` names,
        but the members here of the rooms `unless_in`."""

    def local_members(self, room: str) -> Set[str]:
        """The sids in `room` on this process: a live view."""

    def local_rooms_of(self, sid: str) -> frozenset[str]:
        """The rooms of `sid`, a connection of this process (empty for any other)."""

    def local_rooms(self) -> Collection[str]:
        """Every room with members on this process."""

    def local_connections(self) -> Collection[str]:
        """The sids of this process's open connections."""

    def local_presence(self, room: str) -> list[Track]:
        """The tracks in `room` on this process, oldest first."""

    def local_tracks(self) -> Iterable[tuple[str, Track]]:
        """Every track on this process, with its room."""

    async def perform(self, sid: str | None, command: str, args: Sequence[Any]) -> Any:
        """Run the server's `command` ("join", "leave", "disconnect" or "call") with `args` on
        `sid`, a connection of this process; raises `ConnectionClosed` when it is not one.
        With `sid` `None`, a recovery command from another process (`Backend.recover`)."""

    def keeps(self, room: str) -> bool:
        """Whether `room`'s broadcasts are still wanted here though no connection here is in
        it (a dropped connection of the room may be recovered): stay subscribed to it."""

    async def presences_gone(self, room: str, tracks: Sequence[Track]) -> None:
        """Another process died: its `tracks` in `room` are gone (the members hear of it)."""


class Backend(ABC):
    """Carries broadcasts and membership between the processes that share it.

    A subclass missing one of the abstract methods fails when constructed. The app that uses
    a backend binds it to its core (`node`) when constructed; every method below may be called
    before `run()` is entered, and a backend that cannot serve until then says so by raising.
    """

    _node: Node | None = None

    def bind(self, node: Node) -> None:
        """Serve `node` (done by the `App` given this backend; a backend serves one app)."""
        if self._node is not None and self._node is not node:
            raise ValueError(f"{type(self).__name__} already serves another app.")
        self._node = node

    @property
    def node(self) -> Node:
        """This process's core."""
        if self._node is None:
            raise RuntimeError(f"{type(self).__name__} is not bound to an app.")
        return self._node

    @property
    def healthy(self) -> bool:
        """Whether the backend works as it should now (carries and answers); `True` for one
        that has nothing that can fail."""
        return True

    def metrics(self) -> Mapping[str, float]:
        """Numbers about the backend, for monitoring (`roomcast.metrics` exports each as
        `roomcast_backend_<name>`): a name ending in `_total` counts up, any other is a gauge.
        None by default."""
        return {}

    @abstractmethod
    def run(self) -> AbstractAsyncContextManager[None]:
        """Connect to the other processes for as long as the context is entered."""

    @abstractmethod
    async def publish(self, target: Target, message: Outgoing) -> None:
        """Carry `message` to the other processes (this one has delivered it already)."""

    @abstractmethod
    async def add(self, sid: str) -> None:
        """A connection opened on this process."""

    @abstractmethod
    async def remove(self, sid: str, rooms: Collection[str]) -> None:
        """A connection of this process closed; it was in `rooms`."""

    @abstractmethod
    async def join(self, sid: str, room: str) -> None:
        """A connection of this process joined `room`."""

    @abstractmethod
    async def leave(self, sid: str, room: str) -> None:
        """A connection of this process left `room`."""

    @abstractmethod
    async def members(self, room: str) -> frozenset[str]:
        """Every connection in `room`, on every process."""

    @abstractmethod
    async def rooms_of(self, sid: str) -> frozenset[str]:
        """Every room of the connection `sid`, wherever it is."""

    @abstractmethod
    async def track(self, room: str, track: Track, replaces: Track | None) -> None:
        """A connection of this process is present in `room` as `track` (instead of
        `replaces`, its earlier track there)."""

    @abstractmethod
    async def untrack(self, room: str, track: Track) -> None:
        """A connection of this process is no longer present in `room`."""

    @abstractmethod
    async def presence(self, room: str) -> list[Track]:
        """Every track in `room`, on every process, oldest first."""

    @abstractmethod
    async def keep(self, room: str, rule: HistoryRule, event: str, data: Any) -> None:
        """Keep a broadcast to `room` in its history, as `rule` says (at most `rule.size`
        entries, none older than `rule.ttl`)."""

    @abstractmethod
    async def history(
        self, room: str, rule: HistoryRule, after: str | None, limit: int | None
    ) -> list[Entry]:
        """`room`'s kept broadcasts, oldest first, none older than `rule.ttl`: after the
        offset `after` the first `limit` (all for `None`), else the latest `limit`. Raises
        `ValueError` for an offset that is not one of this history's."""

    @abstractmethod
    async def dropped(self, pid: str, ttl: float) -> None:
        """A connection of this process dropped: for `ttl` seconds, another process may
        recover it through its private id `pid` (`recover`)."""

    @abstractmethod
    async def recover(self, pid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        """Run a recovery `command` ("claim", "missed") with `args` on the process that holds
        the dropped connection of `pid` (`Node.perform(None, ...)` there) and return its
        result. Raises `ConnectionClosed` when no other process does, and `TimeoutError`
        as `command` does."""

    @abstractmethod
    async def command(self, sid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        """Run `command` on the connection `sid` of another process (`Node.perform` there)
        and return its result, or raise its error (an `EventError`, `ConnectionClosed` or
        `TimeoutError` raised there is raised here). Raises `ConnectionClosed` when no process
        holds `sid`, and `TimeoutError` when no answer came in `timeout` seconds (what the
        command may take there) plus the backend's own bound on the way there and back."""

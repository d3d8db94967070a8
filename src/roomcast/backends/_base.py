"""The seam between this process and the others: what a backend carries, and what it asks.

The core keeps this process's connections and rooms and delivers to them itself. A backend
only carries between processes: it takes a broadcast to the others (`publish`), hands what
they broadcast to this process's core (`Node.deliver`), and mirrors joins and leaves so that
`members` and `rooms_of` answer for every process. Its background work runs inside `run()`,
the one async context the app enters (`async with app:`, or `app.start()`/`app.stop()`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Set
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from .._message import Outgoing, Target


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

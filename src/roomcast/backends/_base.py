"""The seam between the app and where room state lives."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Collection
from typing import ClassVar, Protocol

from .._message import Outgoing, Target


class Deliver(Protocol):
    """How a backend hands a message to the app for connections of this process:
    `deliver(sids, message, exclude)` sends it to those of `sids` connected here, but `exclude`.

    Passing a room's live `Members` (from a `RoomIndex`) rather than a copy lets the app keep
    what it resolved them to until they change.
    """

    def __call__(
        self, sids: Collection[str], message: Outgoing, exclude: str | None = None, /
    ) -> Awaitable[None]: ...


class Backend(ABC):
    """Holds connections and room memberships, and resolves broadcasts to receivers.

    Subclasses implement every abstract method; one that does not fails when constructed.
    `members` and `rooms_of` answer for the whole deployment (every process sharing the
    backend); `local_rooms` answers for a connection of this process, synchronously.
    The app calls `open` once before the first connection and `close` at shutdown. A backend
    with `requires_start = True` runs background tasks between the two, so both must come from
    the same task: the app must be started explicitly (`async with app:`, or `app.start()` and
    `app.stop()` from one task such as an ASGI lifespan) rather than on first connection.
    """

    requires_start: ClassVar[bool] = False

    async def open(self, deliver: Deliver) -> None:
        """Start; `deliver(sids, message, exclude)` reaches connections of this process."""
        self._deliver = deliver

    async def close(self) -> None:  # noqa: B027 - optional hook, nothing to do by default
        """Stop and release resources; the default has none to release."""

    @abstractmethod
    async def add(self, sid: str) -> None:
        """Register a new connection of this process."""

    @abstractmethod
    async def remove(self, sid: str) -> frozenset[str]:
        """Forget a connection and take it out of every room; return the rooms it was in."""

    @abstractmethod
    async def join(self, sid: str, room: str) -> None:
        """Put a connection of this process in `room` (no-op if already there)."""

    @abstractmethod
    async def leave(self, sid: str, room: str) -> None:
        """Take a connection of this process out of `room` (no-op if not there)."""

    @abstractmethod
    async def members(self, room: str) -> frozenset[str]:
        """Every connection in `room`."""

    @abstractmethod
    async def rooms_of(self, sid: str) -> frozenset[str]:
        """Every room the connection `sid` is in."""

    @abstractmethod
    def local_rooms(self, sid: str) -> frozenset[str]:
        """The rooms of `sid`, a connection of this process."""

    @abstractmethod
    async def publish(self, target: Target, message: Outgoing) -> None:
        """Deliver `message` to every connection `target` names, each exactly once."""

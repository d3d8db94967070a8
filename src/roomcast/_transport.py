"""The seam between the app and a wire: what the app needs from a transport."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from typing import Any


class Transport(ABC):
    """Carries events to connections.

    A transport calls the app's core, `app.hub` (`opened`, `received`, `closed`), as its
    connections come, send events and go; the core calls these methods back to reach them.
    When a connection closes, the transport cancels the `received` call still running for it
    (but for one that closed its own connection), then calls `closed`.
    """

    async def ask(
        self, peer: Any, event: str, data: Any, answer: Callable[[Any], None]
    ) -> Callable[[], None]:
        """Send `event` to `peer` asking for an acknowledgement, and call `answer` with the
        value the client acknowledges with, if it does (several values as a list, none as
        `None`). Return what forgets the call: the core calls it once it stops waiting (the
        answer came, the time ran out, or the connection closed), so that a client that never
        answers costs nothing after that. Used by `app.call`; a transport that cannot ask
        leaves this as it is."""
        raise NotImplementedError(f"{type(self).__name__} cannot ask its clients for answers.")

    @abstractmethod
    def encode(self, event: str, data: Any, *, offset: str | None = None) -> Any:
        """Return the wire form of one event; called once per broadcast, not per receiver.

        `offset` is the event's offset in the recovery log, while the app recovers
        connections (a transport enabled it): a transport that recovers connections sends it
        with the event; another ignores it."""

    @abstractmethod
    async def send(self, peers: Iterable[Any], encoded: Any) -> None:
        """Hand one encoded event to each of `peers`: what each connection was opened with
        (`app.hub.opened(..., peer=...)`), or its sid when the transport gave none.

        Must not wait for a slow peer: buffer, or apply the transport's overflow policy.
        A peer that is no longer connected is skipped. `peers` may be shared with later
        broadcasts: read it, do not keep or change it.
        """

    @abstractmethod
    async def close(self, sid: str) -> None:
        """Disconnect `sid` from the server side."""

"""One connection's life, in one table: its states and the only moves between them.

Both ends use it: the app for each connection it serves (`Connection`), and each transport for
its own view of a connection (the Socket.IO adapter's peers, `TestClient`). A move the table
does not allow raises `RuntimeError`: that is a bug in roomcast, never a client's doing.

    CONNECTING ──▶ OPEN ──▶ CLOSING ──▶ CLOSED
        └────────────────────▲

- `CONNECTING`: the connect hooks run; the connection can already be sent events and join
  rooms (a hook may greet it).
- `OPEN`: every hook said yes; events are handled.
- `CLOSING`: it is going (the client left, the server closed it, or a hook refused it): it
  receives nothing more, and the disconnect hooks run.
- `CLOSED`: forgotten.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio

from ._limits import TokenBucket
from ._presence import Track
from ._transport import Transport


class State(enum.IntEnum):
    """Where a connection is in its life (an `IntEnum`, in the order of its life, so that a
    test on the hot path of a broadcast costs what an `int`'s does)."""

    CONNECTING = 1
    OPEN = 2
    CLOSING = 3
    CLOSED = 4


_MOVES: Mapping[State, frozenset[State]] = {
    State.CONNECTING: frozenset({State.OPEN, State.CLOSING}),
    State.OPEN: frozenset({State.CLOSING}),
    State.CLOSING: frozenset({State.CLOSED}),
    State.CLOSED: frozenset(),
}


def move(state: State, to: State) -> State:
    """Return `to` if a connection in `state` may move there, else raise `RuntimeError`."""
    if to not in _MOVES[state]:
        raise RuntimeError(f"A connection cannot move from {state.name} to {to.name}.")
    return to


class Answer:
    """What a client answers to one call of the server's, once it does (or the connection
    closes first: `closed`)."""

    __slots__ = ("arrived", "closed", "value")

    def __init__(self) -> None:
        self.arrived = anyio.Event()
        self.value: Any = None
        self.closed = False

    def set(self, value: Any) -> None:
        """The client's answer; only the first counts."""
        if not self.arrived.is_set():
            self.value = value
            self.arrived.set()

    def close(self) -> None:
        """The connection closed before the answer came."""
        if not self.arrived.is_set():
            self.closed = True
            self.arrived.set()


REACHABLE = frozenset({State.CONNECTING, State.OPEN})
"""The states in which a connection is sent events."""


@dataclass(eq=False, slots=True)
class Connection:
    """A connection of this process, as the app serves it."""

    sid: str
    transport: Transport
    peer: Any
    """What `transport.send` receives for this connection (its sid unless the transport said)."""
    environ: Mapping[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    rooms: set[str] = field(default_factory=set)
    """The rooms it is in. Kept as they were once it is closing, for its disconnect hooks."""
    state: State = State.CONNECTING
    bucket: TokenBucket | None = None
    tracks: dict[str, Track] | None = None
    """Its presence in each room it tracked (made on its first track)."""
    calls: set[Answer] | None = None
    """The server's calls to it waiting for an answer (made on the first call)."""
    since: int = 0
    """The number of the last event in the recovery log when it opened."""
    recovered: bool = False
    """Whether it is a dropped connection given back (sid, rooms, session, missed events)."""
    # FIFO, and taken without a trip through the event loop when free.
    lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))

    def move(self, to: State) -> None:
        """Move to the state `to` (see the table in this module's docstring)."""
        self.state = move(self.state, to)

    @property
    def reachable(self) -> bool:
        """Whether events are still sent to it."""
        return self.state in REACHABLE


__all__ = ["REACHABLE", "Answer", "Connection", "State", "move"]

"""What a broadcast carries: who should receive it (`Target`) and what (`Outgoing`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ._transport import Transport


class Target(NamedTuple):
    """The receivers of a broadcast, before they are resolved to connections (immutable).

    `rooms is None` means every connection; `sid` names one connection instead of rooms;
    `exclude` is a connection left out (the sender, for `req.broadcast`).
    """

    rooms: frozenset[str] | None = None
    sid: str | None = None
    exclude: str | None = None


@dataclass(slots=True)
class Outgoing:
    """An event on its way out, encoded at most once per transport however many receive it."""

    event: str
    data: Any
    offset: str | None = None
    """Its offset in this process's recovery log, while the app recovers connections (it goes
    out with it, the same for every receiver here)."""
    mid: str | None = None
    """Its id in the cluster, while the app recovers connections: its offset on the process
    that published it (carried to the others), to tell copies of it apart."""
    _encoded: dict[Transport, Any] = field(default_factory=dict, repr=False, compare=False)

    def encoded(self, transport: Transport) -> Any:
        """The wire form of this message for `transport`, encoding it on first use."""
        wire = self._encoded.get(transport, _MISSING)
        if wire is _MISSING:
            if self.offset is None:  # (a transport of one's own may not know `offset`)
                wire = transport.encode(self.event, self.data)
            else:
                wire = transport.encode(self.event, self.data, offset=self.offset)
            self._encoded[transport] = wire
        return wire


class Args(tuple[Any, ...]):
    """Several arguments of one event or acknowledgement, sent as several (a Socket.IO client
    calls its handler, or its callback, with each), not as one list."""

    __slots__ = ()


def pack(data: Any, more: tuple[Any, ...]) -> Any:
    """What an event carries: `data`, or `data` and `more` as several arguments."""
    return Args((data, *more)) if more else data


def spread(data: Any) -> list[Any]:
    """The arguments an event carries, as a transport sends them."""
    if data is None:
        return []
    if isinstance(data, Args):
        return list(data)
    return [data]


def fold(args: Sequence[Any]) -> Any:
    """The arguments a client sent, as one `data`: `None`, the one, or a list of several."""
    if not args:
        return None
    return args[0] if len(args) == 1 else list(args)


_MISSING: Any = object()

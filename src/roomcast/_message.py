"""What a broadcast carries: who should receive it (`Target`) and what (`Outgoing`)."""

from __future__ import annotations

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


_MISSING: Any = object()

"""What one connection may do: limits, the rate limiter, and the counters an app can read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ._exceptions import InvalidPayload, TooLarge

SlowConsumerPolicy = Literal["disconnect", "drop_oldest"]


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits an app enforces on every connection. `None` turns a limit off.

    - `max_event_name`: characters in an event's name.
    - `max_payload`: the size of a payload, about its length as JSON (strings count their
      characters, bytes their length, other scalars 8).
    - `max_depth`: how deeply a payload's lists and objects may nest.
    - `max_rooms`: rooms one connection may be in at once.
    - `rate`, `burst`: events per second a connection may send on average, and in a burst
      (a token bucket); events over it are refused with `rate_limited`.
    - `max_queued`, `max_queued_bytes`: events, and their bytes as encoded, waiting to be
      written to one connection; past either, `slow_consumer` applies: `"disconnect"` the
      connection, or drop the oldest waiting events (`"drop_oldest"`).
    - `max_pending`: events one connection has sent that are not handled yet (they wait
      their turn: one connection's events run one at a time); past it, an event is refused
      with `rate_limited` before it is kept, so that a connection holds at most about
      `max_pending * max_payload` bytes of input.
    - `max_attachments`: binary attachments one event may announce; an event announcing more,
      or whose attachments add up to more than `max_payload` bytes, closes its connection as
      soon as it is seen (over Socket.IO), before the attachments are kept.
    - `max_malformed`: packets that cannot be parsed (or are no event) that one connection may
      send; each is answered with `invalid_payload`, the first is logged, and the connection
      is closed at the limit.
    """

    max_event_name: int | None = 128
    max_payload: int | None = 128 * 1024
    max_depth: int | None = 32
    max_rooms: int | None = 1_000
    rate: float | None = 100.0
    burst: int = 200
    max_queued: int | None = 1_000
    max_queued_bytes: int | None = 1024 * 1024
    max_pending: int | None = 64
    max_attachments: int | None = 10
    max_malformed: int | None = 10
    slow_consumer: SlowConsumerPolicy = "disconnect"

    def __post_init__(self) -> None:
        if self.slow_consumer not in ("disconnect", "drop_oldest"):
            raise ValueError("slow_consumer must be 'disconnect' or 'drop_oldest'.")
        if self.rate is not None and (self.rate <= 0 or self.burst < 1):
            raise ValueError("rate must be positive and burst at least 1.")

    def check_event(self, event: Any, data: Any) -> None:
        """Raise `TooLarge` when `event` or `data` is over these limits, and `InvalidPayload`
        when either holds text that cannot be encoded as UTF-8 (a lone surrogate)."""
        if isinstance(event, str):
            if self.max_event_name is not None and len(event) > self.max_event_name:
                raise TooLarge(f"An event name must be at most {self.max_event_name} characters.")
            if not is_utf8(event):
                raise InvalidPayload(NOT_UTF8)
        if data is None or isinstance(data, bool | int | float):
            return
        check_payload(data, self.max_payload, self.max_depth)


NOT_UTF8 = "Text must be valid Unicode (no lone surrogates)."


def is_utf8(text: str) -> bool:
    """Whether `text` can be encoded as UTF-8 (it holds no lone surrogate)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_payload(data: Any, max_size: int | None, max_depth: int | None) -> None:
    """Raise `TooLarge` when `data` is bigger than `max_size` or nests deeper than
    `max_depth`, and `InvalidPayload` when a string in it cannot be encoded as UTF-8; stops
    looking as soon as it knows."""
    size_left = max_size if max_size is not None else float("inf")
    depth_limit = max_depth if max_depth is not None else float("inf")
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            size_left -= len(value) + 2
            if not is_utf8(value):
                raise InvalidPayload(NOT_UTF8)
        elif isinstance(value, bytes | bytearray):
            size_left -= len(value) + 2
        elif isinstance(value, dict):
            if depth >= depth_limit:
                raise TooLarge(f"A payload may nest at most {max_depth} levels deep.")
            size_left -= 2
            for key, item in value.items():
                if isinstance(key, str):
                    size_left -= len(key) + 4
                    if not is_utf8(key):
                        raise InvalidPayload(NOT_UTF8)
                else:
                    size_left -= 12
                stack.append((item, depth + 1))
        elif isinstance(value, list | tuple):
            if depth >= depth_limit:
                raise TooLarge(f"A payload may nest at most {max_depth} levels deep.")
            size_left -= 2 + len(value)
            stack.extend((item, depth + 1) for item in value)
        else:
            size_left -= 8
        if size_left < 0:
            raise TooLarge(f"A payload must be at most {max_size} bytes.")


class TokenBucket:
    """Allows `rate` events per second on average and `burst` at once."""

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._last = now

    def take(self, now: float) -> bool:
        """Take one token if there is one; return whether there was."""
        tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if tokens < 1:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1
        return True


@dataclass(slots=True)
class Stats:
    """Counters of what the app refused or shed, since it was made. Read them at any time."""

    rate_limited: int = 0
    too_large: int = 0
    slow_consumers_disconnected: int = 0
    events_dropped: int = 0
    malformed: int = 0
    """Packets that could not be parsed, or were no event."""
    refused_connections: int = 0
    """Connections closed for what they sent: too many attachments or malformed packets."""
    deliveries: int = 0
    """Events handed to a connection's transport, one per receiver."""
    events: dict[str, dict[str, int]] = field(default_factory=dict)
    """Events handled, by route, then by outcome: the outcome is `"ok"` or the error's code;
    the route is `""` for events that no route names."""

"""The exceptions roomcast raises.

The tree::

    RoomcastError
    ├── EventError              (the sender of an event gets an error with `.code`)
    │   ├── UnknownEvent        unknown_event
    │   ├── InvalidPayload      invalid_payload
    │   ├── InvalidRoomName     invalid_room
    │   ├── JoinRefused         forbidden
    │   ├── TooLarge            too_large
    │   ├── TooManyRooms        too_many_rooms
    │   ├── RateLimited         rate_limited
    │   └── BackendUnavailable  unavailable
    ├── BackendRefused          (a backend's service refuses it at start)
    ├── Reject                  (an on_connect hook refuses a connection)
    ├── ConnectionRejected      (a client was refused; raised on the client side)
    ├── ConnectionClosed        (a client used a connection that is closed)
    ├── InvalidRoute            (a route that cannot be registered)
    └── RouteConflict           (two handlers registered for one event)

`BackendRefused` is a setup error, raised when the app starts. `EventError` and its
subclasses are a peer's bad input: raised while handling an event, they
reach the sender as an error payload and never close the connection. `RouteConflict` is the
caller's misuse, raised while the app is being set up, and so is `InvalidRoute` (which is also
a `ValueError`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BackendRefused",
    "BackendUnavailable",
    "ConnectionClosed",
    "ConnectionRejected",
    "EventError",
    "InvalidPayload",
    "InvalidRoomName",
    "InvalidRoute",
    "JoinRefused",
    "RateLimited",
    "Reject",
    "RoomcastError",
    "RouteConflict",
    "TooLarge",
    "TooManyRooms",
    "UnknownEvent",
]


class RoomcastError(Exception):
    """Raised by roomcast; the base of every roomcast exception."""


class EventError(RoomcastError):
    """Raised when an event cannot be handled; the sender gets `code` and the message (and
    `details`, when given: a list of JSON-able items, such as where a payload failed)."""

    code = "event_error"

    def __init__(self, message: str = "", *, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.details = details


class UnknownEvent(EventError):
    """Raised when no route handles an event."""

    code = "unknown_event"


class InvalidPayload(EventError):
    """Raised by a handler that rejects the payload it was sent."""

    code = "invalid_payload"


class InvalidRoomName(EventError, ValueError):
    """Raised when a room name is not a non-empty string of valid Unicode within the length
    limit."""

    code = "invalid_room"


class JoinRefused(EventError):
    """Raised by `req.join` when a room guard refuses the sender that room."""

    code = "forbidden"


class TooLarge(EventError):
    """Raised when an event's name or payload is over the app's limits."""

    code = "too_large"


class TooManyRooms(EventError):
    """Raised by `req.join` when the sender is already in as many rooms as the limit allows."""

    code = "too_many_rooms"


class RateLimited(EventError):
    """Raised when a connection sends events faster than the app's rate limit."""

    code = "rate_limited"


class BackendUnavailable(EventError):
    """Raised when the backend cannot reach the shared room state (e.g. Redis is down)."""

    code = "unavailable"


class BackendRefused(RoomcastError):
    """Raised by `app.start()` when the backend's service refuses it for good (a wrong
    database or credentials, or an address that is not that service); the cause is chained."""


class Reject(RoomcastError):
    """Raised by an `on_connect` hook to refuse a connection; the client gets `reason`."""

    def __init__(self, reason: str = "Connection rejected") -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionRejected(RoomcastError):
    """Raised on the client side when the server refused the connection."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectionClosed(RoomcastError):
    """Raised when a client sends or receives on a connection that is closed."""


class InvalidRoute(RoomcastError, ValueError):
    """Raised when a route's event name is empty or reserved, or its handler not callable."""


class RouteConflict(RoomcastError):
    """Raised when a second handler is registered for an event that already has one."""


def error_for(code: str, message: str) -> EventError:
    """The `EventError` whose code is `code` (a plain `EventError` with that code when roomcast
    has none), with `message`: an error raised on another process, raised again here."""
    kinds: list[type[EventError]] = [EventError]
    for kind in kinds:
        if kind.code == code:
            return kind(message)
        kinds.extend(kind.__subclasses__())
    error = EventError(message)
    error.code = code
    return error

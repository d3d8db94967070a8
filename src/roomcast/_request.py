"""One incoming event, and everything its handler may do with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from ._connection import Connection
from ._exceptions import UnknownEvent
from ._handlers import Endpoint
from ._message import Args, Outgoing, Target, pack
from ._room import Room, Rooms

Ack = Callable[[Any], Awaitable[None]]
"""Sends the acknowledgement a client asked for, with its payload."""


class Host(Rooms, Protocol):
    """What a request needs from the app's core (`Hub` implements it), so that it does not
    depend on `App`."""

    @property
    def app(self) -> Any:
        """The `App` the core serves."""

    async def join(self, request: Request, conn: Connection, room: Any) -> None:
        """Put `conn`, the sender of `request`, in `room`, as the guards and limits allow."""

    async def leave(self, conn: Connection, room: str) -> None:
        """Take `conn` out of `room` (and end its presence there)."""

    async def track(
        self, request: Request, conn: Connection, room: Any, meta: Any, key: Any
    ) -> None:
        """Make `conn` present in `room` under `key` with `meta`, joining it first."""

    async def untrack(self, conn: Connection, room: str) -> None:
        """End `conn`'s presence in `room`."""

    def endpoint(self, event: str) -> Endpoint | None:
        """The handler of `event`, as the app calls it."""


class Request:
    """An event from one connection: `event`, `data`, `sid`, and what a handler can do.

    Who receives what:

    - `await req.emit(event, data)`: only the sender;
    - `await req.respond(data)`: the sender's acknowledgement (no-op when it asked for none);
    - `await req.broadcast(event, data)`: every connection but the sender;
    - `await req.room(name).broadcast(event, data)`: every member of `name` but the sender.
    """

    __slots__ = ("_ack", "_args", "_conn", "_host", "_responded", "data", "event")

    def __init__(
        self,
        host: Host,
        conn: Connection,
        event: str,
        data: Any,
        ack: Ack | None = None,
        args: tuple[Any, ...] | None = None,
    ) -> None:
        self._host = host
        self.event = event
        self.data = data
        self._args = args
        self._conn = conn
        self._ack = ack
        self._responded = False

    @property
    def args(self) -> tuple[Any, ...]:
        """Every argument the client sent, as a tuple (a Socket.IO client may send several:
        `emit("move", x, y)`); `data` is the one, a list of several, or `None`."""
        if self._args is None:
            self._args = () if self.data is None else (self.data,)
        return self._args

    @property
    def app(self) -> Any:
        """The `App` that received the event."""
        return self._host.app

    @property
    def sid(self) -> str:
        """The id of the connection that sent the event."""
        return self._conn.sid

    @property
    def environ(self) -> Mapping[str, Any]:
        """What the transport knows of the connection: for python-socketio, the WSGI-style
        environ of its HTTP request (`HTTP_COOKIE`, `QUERY_STRING`, ...); `{}` if nothing."""
        return self._conn.environ

    @property
    def session(self) -> dict[str, Any]:
        """A dict that lives as long as the connection."""
        return self._conn.session

    @property
    def recovered(self) -> bool:
        """Whether the connection is a dropped one given back by connection-state recovery,
        with its sid, rooms, session and the events it missed (see `attach(recovery=...)`)."""
        return self._conn.recovered

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms the sender is in now."""
        return frozenset(self._conn.rooms)

    @property
    def wants_response(self) -> bool:
        """Whether the client asked for an acknowledgement that has not been sent yet."""
        return self._ack is not None and not self._responded

    async def join(self, room: str) -> None:
        """Put the sender in `room`.

        Raises `InvalidRoomName` for a bad name, `JoinRefused` when a room guard refuses, and
        `TooManyRooms` when the sender is in as many rooms as `app.limits.max_rooms` allows.
        """
        await self._host.join(self, self._conn, room)

    async def leave(self, room: str) -> None:
        """Take the sender out of `room` (no-op if it is not there)."""
        await self._host.leave(self._conn, self._host.check_room_name(room))

    async def track(self, room: str, meta: Mapping[str, Any], *, key: str | None = None) -> None:
        """Make the sender present in `room` under `key` (its sid by default) with `meta`, a
        JSON object; it joins `room` first if it is not a member (guards and limits apply, as
        for `join`). Tracking the same room again replaces the meta.

        The room's members get the change as `"presence_diff"`; the sender's first track in
        a room is followed, for it only, by `"presence_state"`. Raises `InvalidPayload` for a
        meta that is not a JSON object, sets `"ref"`, or is over the payload limits (and for
        a bad key), and whatever `join` raises.
        """
        await self._host.track(self, self._conn, room, meta, key)

    async def untrack(self, room: str) -> None:
        """End the sender's presence in `room` (it stays a member; no-op if not present).
        Leaving the room, or disconnecting, untracks too."""
        await self._host.untrack(self._conn, self._host.check_room_name(room))

    async def emit(self, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` to the sender only (with several arguments when given `more`)."""
        await self._host.publish(Target(sid=self._conn.sid), Outgoing(event, pack(data, more)))

    async def respond(self, *values: Any) -> None:
        """Acknowledge the event with `values` (none, one, or several: the client's callback
        gets each); only the first response counts."""
        if self._ack is None or self._responded:
            return
        data = None if not values else values[0] if len(values) == 1 else Args(values)
        self._responded = True
        try:
            await self._ack(data)
        except BaseException:
            self._responded = False  # nothing was sent: an error may still take its place
            raise

    async def broadcast(self, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` to every connection except the sender (with several arguments when
        given `more`)."""
        await self._host.publish(Target(exclude=self._conn.sid), Outgoing(event, pack(data, more)))

    def room(self, *names: str) -> Room:
        """The rooms `names` as seen by the sender: their broadcasts leave the sender out."""
        return Room(self._host, names, exclude=self._conn.sid)

    async def route(self, event: str) -> Any:
        """Run the handler of `event` with this same request (express.io's forwarding)."""
        endpoint = self._host.endpoint(event)
        if endpoint is None:
            raise UnknownEvent(f"No route handles the event {event!r}.")
        return await endpoint(self)

    async def fail(self, code: str, message: str, details: list[Any] | None = None) -> None:
        """Tell the sender this event failed: in the acknowledgement if it asked for one,
        else as the event `"error"` with `{code, message, event}`; `details`, when given,
        go with them."""
        error: dict[str, Any] = {"code": code, "message": message}
        if details is not None:
            error["details"] = details
        if self.wants_response:
            await self.respond({"error": error})
        else:
            await self.emit("error", {**error, "event": self.event})

    def __repr__(self) -> str:
        return f"<Request event={self.event!r} sid={self._conn.sid!r}>"

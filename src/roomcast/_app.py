"""The app: routes and hooks, the connections of this process, dispatch and delivery."""

from __future__ import annotations

import fnmatch
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from ._exceptions import EventError, JoinRefused, RateLimited, Reject, TooLarge, UnknownEvent
from ._limits import Limits, Stats, TokenBucket
from ._message import Outgoing, Target
from ._request import Ack, Request
from ._room import Room
from ._rooms import DEFAULT_MAX_ROOM_NAME, EVERYONE, Members, check_room_name
from ._routing import Handler, Router, Routes
from ._transport import Transport
from .backends import Backend, MemoryBackend

logger = logging.getLogger("roomcast")

HookT = TypeVar("HookT", bound=Handler)
Guard = Callable[[Request, str], Awaitable[bool] | bool]
"""A room guard: `guard(req, room)` returns whether `req`'s sender may join `room`."""
GuardT = TypeVar("GuardT", bound=Guard)

INTERNAL_ERROR_MESSAGE = "Internal server error."


@dataclass(eq=False, slots=True)
class Connection:
    """A connection of this process, as the app tracks it."""

    sid: str
    transport: Transport
    peer: Any
    """What `transport.send` receives for this connection (its sid unless the transport said)."""
    environ: Mapping[str, Any] = field(default_factory=dict)
    bucket: TokenBucket | None = None
    # FIFO, and taken without a trip through the event loop when free.
    lock: anyio.Lock = field(default_factory=lambda: anyio.Lock(fast_acquire=True))
    session: dict[str, Any] = field(default_factory=dict)
    closed: bool = False


Group = tuple[Transport, Sequence[Any]]
"""Receivers on one transport: the transport, and the peers to `send` to."""


class Fanout:
    """A room's receivers in this process, resolved and grouped by transport.

    The app keeps one in `Members.fanout` after a broadcast to the room, so the next ones skip
    resolving sids to connections; the room index drops it whenever the members change.
    """

    __slots__ = ("_positions", "_sids", "app", "groups")

    def __init__(self, app: App, groups: list[tuple[Transport, list[str], list[Any]]]) -> None:
        self.app = app
        self.groups: list[tuple[Transport, tuple[Any, ...]]] = [
            (transport, tuple(peers)) for transport, _, peers in groups
        ]
        self._sids = [sids for _, sids, _ in groups]
        self._positions: dict[str, tuple[int, int]] | None = None

    def without(self, sid: str) -> list[tuple[Transport, tuple[Any, ...]]]:
        """The groups, with the connection `sid` left out."""
        if self._positions is None:  # made on the first broadcast that leaves someone out
            self._positions = {
                sid: (g, i) for g, sids in enumerate(self._sids) for i, sid in enumerate(sids)
            }
        where = self._positions.get(sid)
        if where is None:
            return self.groups
        g, i = where
        transport, peers = self.groups[g]
        groups = self.groups.copy()
        groups[g] = (transport, peers[:i] + peers[i + 1 :])
        return groups


class App(Router):
    """Routes events by name, keeps rooms through a backend, and broadcasts.

    `App()` keeps rooms in this process's memory; `App(backend=...)` shares them elsewhere.
    Room names are non-empty strings of at most `max_room_name` characters; `limits` bound
    what each connection may do (see `Limits`), and `stats` counts what was refused or shed.
    """

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        limits: Limits | None = None,
        max_room_name: int = DEFAULT_MAX_ROOM_NAME,
    ) -> None:
        super().__init__()
        self.backend = backend if backend is not None else MemoryBackend()
        self.limits = limits if limits is not None else Limits()
        self.stats = Stats()
        self.max_room_name = max_room_name
        self._connect_hooks: list[Handler] = []
        self._disconnect_hooks: list[Handler] = []
        self._guards: list[tuple[str, Guard]] = []
        self._connections: dict[str, Connection] = {}
        self._transports: dict[Transport, int] = {}
        # Rooms with a connection that is closing (its disconnect hooks run, it has not left
        # them yet): their cached `Fanout` may still hold it, so it is not used. `EVERYONE`
        # counts every closing connection.
        self._closing: dict[str, int] = {}
        self._opened = False

    # -- setting up ---------------------------------------------------------------------------

    def on_connect(self, hook: HookT) -> HookT:
        """Register a hook run when a connection opens; `req.data` is the client's auth data.

        Raise `Reject(reason)` in it to refuse the connection.
        """
        self._connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: HookT) -> HookT:
        """Register a hook run when a connection closes, before it leaves its rooms."""
        self._disconnect_hooks.append(hook)
        return hook

    def guard(self, pattern: str) -> Callable[[GuardT], GuardT]:
        """Register a guard for the rooms whose names match `pattern` (`fnmatch` style:
        `"admin:*"`). It is called as `guard(req, room)` before a join and returns whether
        the join is allowed (or raises `JoinRefused` itself); every matching guard must allow.
        """

        def decorator(func: GuardT) -> GuardT:
            self._guards.append((pattern, func))
            return func

        return decorator

    async def check_join(self, request: Request, room: str) -> None:
        """Raise `JoinRefused` unless every guard matching `room` allows `request` in."""
        for pattern, guard in self._guards:
            if fnmatch.fnmatchcase(room, pattern):
                allowed = guard(request, room)
                if inspect.isawaitable(allowed):
                    allowed = await allowed
                if not allowed:
                    raise JoinRefused(f"Joining the room {room!r} is not allowed.")

    def check_room_name(self, name: Any) -> str:
        """Return `name` if it is a valid room name here, else raise `InvalidRoomName`."""
        return check_room_name(name, self.max_room_name)

    # -- what handlers and the rest of the program call ----------------------------------------

    def room(self, *names: str) -> Room:
        """The room `name` (or the union of several): broadcasts reach every member."""
        return Room(self, names)

    async def broadcast(self, event: str, data: Any = None) -> None:
        """Send `event` to every connection."""
        await self.backend.publish(Target(), Outgoing(event, data))

    async def emit(self, sid: str, event: str, data: Any = None) -> None:
        """Send `event` to the connection `sid`, from anywhere (no-op if it is gone)."""
        await self.backend.publish(Target(sid=sid), Outgoing(event, data))

    async def rooms_of(self, sid: str) -> frozenset[str]:
        """The rooms the connection `sid` is in."""
        return await self.backend.rooms_of(sid)

    async def disconnect(self, sid: str) -> None:
        """Close the connection `sid` of this process from the server side."""
        conn = self._connections.get(sid)
        if conn is not None:
            await conn.transport.close(sid)

    @property
    def connections(self) -> frozenset[str]:
        """The sids of this process's open connections."""
        return frozenset(self._connections)

    async def start(self) -> None:
        """Open the backend. Call `stop` from the same task (an ASGI lifespan does)."""
        if not self._opened:
            self._opened = True
            await self.backend.open(self.deliver)

    async def stop(self) -> None:
        """Close the backend; connections still open stay in this process's memory only."""
        if self._opened:
            self._opened = False
            await self.backend.close()

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- what transports call ------------------------------------------------------------------

    async def handle_connect(
        self,
        sid: str,
        auth: Any,
        transport: Transport,
        environ: Mapping[str, Any] | None = None,
        *,
        peer: Any = None,
    ) -> None:
        """Open the connection `sid` and run the connect hooks.

        `environ` is what the transport knows of the connection (for python-socketio, the
        WSGI-style environ of the HTTP request: headers, query string, remote address).
        `peer` is what `transport.send` will be given to reach it (by default, `sid`).

        Raises `Reject` when a hook refuses it (a hook that fails otherwise is logged and
        refuses with a generic reason); the connection is then already forgotten.
        """
        await self._open()
        if sid in self._connections:
            raise ValueError(f"The connection {sid!r} is already open.")
        conn = Connection(
            sid, transport, sid if peer is None else peer, environ if environ is not None else {}
        )
        if self.limits.rate is not None:
            conn.bucket = TokenBucket(self.limits.rate, self.limits.burst, anyio.current_time())
        self._connections[sid] = conn
        self._transports[transport] = self._transports.get(transport, 0) + 1
        await self.backend.add(sid)
        try:
            request = Request(self, conn, "connect", auth)
            for hook in self._connect_hooks:
                await self.call_handler(hook, request)
        except Reject:
            await self._forget(conn)
            raise
        except Exception as exc:
            logger.exception("An on_connect hook failed (sid %s)", sid)
            await self._forget(conn)
            raise Reject(INTERNAL_ERROR_MESSAGE) from exc
        except BaseException:
            await self._forget(conn)
            raise

    async def handle_event(self, sid: str, event: str, data: Any, ack: Ack | None) -> None:
        """Run the handler of `event` for `sid`; `ack` is `None` when none was asked for.

        Events of one connection run one at a time, in the order this is called.
        """
        conn = self._connections.get(sid)
        if conn is None:
            return
        # Cheap refusals come first, before the event waits for its turn.
        try:
            if conn.bucket is not None and not conn.bucket.take(anyio.current_time()):
                self.stats.rate_limited += 1
                raise RateLimited("Too many events: slow down.")
            self.limits.check_event(event, data)
        except EventError as exc:
            if isinstance(exc, TooLarge):
                self.stats.too_large += 1
            await Request(self, conn, event, data, ack).fail(exc.code, str(exc))
            return
        async with conn.lock:
            if conn.closed:
                return
            request = Request(self, conn, event, data, ack)
            try:
                handler = self.handler(event) if isinstance(event, str) else None
                if handler is None:
                    raise UnknownEvent(f"No route handles the event {event!r}.")
                result = await self.call_handler(handler, request)
                if result is not None:
                    await request.respond(result)
            except EventError as exc:
                await request.fail(exc.code, str(exc))
            except Exception:
                logger.exception("The handler of %r failed (sid %s)", event, sid)
                await request.fail("internal", INTERNAL_ERROR_MESSAGE)
            # A client that asked for an acknowledgement always gets one.
            await request.respond(None)

    async def handle_disconnect(self, sid: str) -> None:
        """Close the connection `sid`: run the disconnect hooks, then leave every room."""
        conn = self._connections.get(sid)
        if conn is None:
            return
        rooms = self._drop(conn)
        try:
            request = Request(self, conn, "disconnect", None)
            for hook in self._disconnect_hooks:
                try:
                    await self.call_handler(hook, request)
                except Exception:
                    logger.exception("An on_disconnect hook failed (sid %s)", sid)
        finally:
            await self._remove(conn, rooms)

    async def deliver(
        self, sids: Collection[str], message: Outgoing, exclude: str | None = None
    ) -> None:
        """Send `message` to those of `sids` that are connections of this process, but
        `exclude`. Given a room's `Members`, it resolves them once and keeps the result there
        until they change."""
        groups: Collection[Group]
        if type(sids) is Members and sids.name not in self._closing:
            fanout = sids.fanout
            if fanout is None or fanout.app is not self:
                fanout = sids.fanout = Fanout(self, self._group(sids))
            groups = fanout.groups if exclude is None else fanout.without(exclude)
        else:
            groups = [(transport, peers) for transport, _, peers in self._group(sids, exclude)]
        for transport, peers in groups:
            if peers:
                await transport.send(peers, message.encoded(transport))

    async def call_handler(self, handler: Handler, request: Request) -> Any:
        """Run a handler: `async def` ones on the event loop, plain `def` ones in a thread."""
        if _is_async(handler):
            return await handler(request)
        return await anyio.to_thread.run_sync(handler, request)

    # -- internals -----------------------------------------------------------------------------

    async def _open(self) -> None:
        if not self._opened:
            if self.backend.requires_start:
                raise RuntimeError(
                    f"{type(self.backend).__name__} runs background tasks: start the app "
                    "first (`async with app:`, or on_startup=app.start and "
                    "on_shutdown=app.stop in the ASGI app)."
                )
            await self.start()

    def _group(
        self, sids: Iterable[str], exclude: str | None = None
    ) -> list[tuple[Transport, list[str], list[Any]]]:
        """Those of `sids` connected here but `exclude`, grouped by transport, with their
        peers."""
        conns = self._connections
        if len(self._transports) == 1:
            (transport,) = self._transports
            local = [sid for sid in sids if sid in conns and sid != exclude]
            return [(transport, local, [conns[sid].peer for sid in local])]
        groups: dict[Transport, tuple[list[str], list[Any]]] = {}
        for sid in sids:
            conn = conns.get(sid)
            if conn is not None and sid != exclude:
                group = groups.get(conn.transport)
                if group is None:
                    group = groups[conn.transport] = ([], [])
                group[0].append(sid)
                group[1].append(conn.peer)
        return [(transport, local, peers) for transport, (local, peers) in groups.items()]

    def _drop(self, conn: Connection) -> frozenset[str]:
        """Stop delivering to `conn`; return the rooms it is still in, marked as closing."""
        conn.closed = True
        del self._connections[conn.sid]
        count = self._transports[conn.transport] - 1
        if count:
            self._transports[conn.transport] = count
        else:
            del self._transports[conn.transport]
        rooms = self.backend.local_rooms(conn.sid) | {EVERYONE}
        for room in rooms:
            self._closing[room] = self._closing.get(room, 0) + 1
        return rooms

    async def _remove(self, conn: Connection, rooms: frozenset[str]) -> None:
        """Take a dropped connection out of every room, whatever happens to the caller."""
        try:
            with anyio.CancelScope(shield=True):
                await self.backend.remove(conn.sid)
        finally:
            for room in rooms:
                count = self._closing[room] - 1
                if count:
                    self._closing[room] = count
                else:
                    del self._closing[room]

    async def _forget(self, conn: Connection) -> None:
        await self._remove(conn, self._drop(conn))

    def __repr__(self) -> str:
        return f"<App routes={len(self.events)} connections={len(self._connections)}>"


def _is_async(handler: Callable[..., Any]) -> bool:
    try:
        return _is_async_cached(handler)
    except TypeError:  # an unhashable callable object
        return _inspect_async(handler)


def _inspect_async(handler: Callable[..., Any]) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


_is_async_cached = functools.lru_cache(maxsize=4096)(_inspect_async)


__all__ = ["App", "Connection", "Fanout", "Routes"]

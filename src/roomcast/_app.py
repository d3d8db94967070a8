"""The app: what users register and call. It composes a `Router` (routes) and a `Hub` (this
process's connections, dispatch and delivery), and runs its backend while it is entered."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio

from ._exceptions import RouteConflict
from ._handlers import is_async, to_async
from ._history import HistoryRule
from ._hub import Hub, Middleware
from ._limits import Limits, Stats
from ._message import Outgoing, Target, pack
from ._request import Request
from ._room import Room
from ._rooms import DEFAULT_MAX_ROOM_NAME
from ._routing import Handler, HandlerT, Router, Routes
from .backends import Backend, MemoryBackend

DEFAULT_PRESENCE_WINDOW = 0.02
"""Seconds within which one room's presence changes are coalesced into one diff."""

HookT = TypeVar("HookT", bound=Handler)
Guard = Callable[[Request, str], Awaitable[bool] | bool]
"""A room guard: `guard(req, room)` returns whether `req`'s sender may join `room`."""
GuardT = TypeVar("GuardT", bound=Guard)
MiddlewareT = TypeVar("MiddlewareT", bound=Middleware)


class App:
    """Routes events by name, keeps rooms, and broadcasts.

    `App()` serves one process; `App(backend=...)` shares rooms and broadcasts with other
    processes. Room names are non-empty strings of at most `max_room_name` characters;
    `limits` bound what each connection may do (see `Limits`), and `stats` counts what was
    refused or shed. `clock` is what the rate limiter reads as the time in seconds (the event
    loop's clock by default; a test may pass its own). `presence_window`: the seconds within
    which one room's presence changes on this process are sent as one diff.
    """

    def __init__(
        self,
        *,
        backend: Backend | None = None,
        limits: Limits | None = None,
        max_room_name: int = DEFAULT_MAX_ROOM_NAME,
        clock: Callable[[], float] = anyio.current_time,
        presence_window: float = DEFAULT_PRESENCE_WINDOW,
    ) -> None:
        self.router = Router()
        self.backend = backend if backend is not None else MemoryBackend()
        self.limits = limits if limits is not None else Limits()
        self.max_room_name = max_room_name
        self.hub = Hub(
            self, self.router, self.backend, self.limits, max_room_name, clock, presence_window
        )
        """What transports call as their connections open, send events and close."""
        self._running: AsyncExitStack | None = None

    @property
    def stats(self) -> Stats:
        """Counters of what was refused or shed."""
        return self.hub.stats

    # -- setting up ---------------------------------------------------------------------------

    @overload
    def route(self, event: str) -> Callable[[HandlerT], HandlerT]: ...
    @overload
    def route(self, event: str, handler: Handler | Routes) -> None: ...

    def route(
        self, event: str, handler: Handler | Routes | None = None
    ) -> Callable[[HandlerT], HandlerT] | None:
        """Register a handler for `event`, as a decorator or directly.

        `route("customers", {"create": f, "update": g})` registers `customers:create` and
        `customers:update`.
        """
        return self.router.route(event, handler)  # type: ignore[arg-type]

    def include_router(self, router: Router) -> None:
        """Add every route of `router`, under its prefix."""
        self.router.include_router(router)

    def handler(self, event: str) -> Handler | None:
        """The handler registered for `event`, or `None`."""
        return self.router.handler(event)

    @property
    def events(self) -> frozenset[str]:
        """Every event name the app handles."""
        return self.router.events

    def on_connect(self, hook: HookT) -> HookT:
        """Register a hook run when a connection opens; `req.data` is the client's auth data.

        Raise `Reject(reason)` in it to refuse the connection.
        """
        self.hub.connect_hooks.append(to_async(hook))
        return hook

    def on_disconnect(self, hook: HookT) -> HookT:
        """Register a hook run when a connection closes, before it leaves its rooms."""
        self.hub.disconnect_hooks.append(to_async(hook))
        return hook

    @overload
    def guard(self, pattern: str) -> Callable[[GuardT], GuardT]: ...
    @overload
    def guard(self, pattern: str, guard: Guard) -> None: ...

    def guard(self, pattern: str, guard: Guard | None = None) -> Callable[[GuardT], GuardT] | None:
        """Register a guard for the rooms whose names match `pattern` (`fnmatch` style:
        `"admin:*"`), as a decorator or directly. It is called as `guard(req, room)` before a
        join and returns whether the join is allowed (or raises `JoinRefused` itself); every
        matching guard must allow. A plain `def` guard runs in a worker thread.
        """
        if guard is None:

            def decorator(func: GuardT) -> GuardT:
                self.hub.guards.append((pattern, to_async(func)))
                return func

            return decorator
        self.hub.guards.append((pattern, to_async(guard)))
        return None

    def middleware(self, middleware: MiddlewareT) -> MiddlewareT:
        """Register `async def middleware(req, call_next)`, run around every event's handler
        (the first registered outermost). `await call_next()` runs the rest and returns the
        handler's result; a middleware may return a value of its own instead (the
        acknowledgement), or raise an `EventError` to refuse the event. Unknown events go
        through it too: `call_next()` then raises `UnknownEvent`.
        """
        if not is_async(middleware):
            raise TypeError(f"A middleware must be an async function: {middleware!r}")
        self.hub.middleware.append(middleware)
        return middleware

    def fallback(self, handler: HandlerT) -> HandlerT:
        """Register the handler of events that no route names (instead of `unknown_event`);
        `req.event` is the name the client sent. One per app."""
        if self.hub.fallback is not None:
            raise RouteConflict("The app already has a fallback handler.")
        self.hub.fallback = to_async(handler)
        return handler

    def check_room_name(self, name: Any) -> str:
        """Return `name` if it is a valid room name here, else raise `InvalidRoomName`."""
        return self.hub.check_room_name(name)

    def keep_history(self, pattern: str, *, size: int = 100, ttl: float = 300.0) -> None:
        """Keep the broadcasts to rooms whose names match `pattern` (`fnmatch` style, as
        guards): at most `size` per room, none older than `ttl` seconds. The first rule that
        matches a room applies. Read them with `app.room(name).history()`."""
        self.hub.history.add(HistoryRule(pattern, size, ttl))

    # -- what handlers and the rest of the program call ----------------------------------------

    def room(self, *names: str) -> Room:
        """The room `name` (or the union of several): broadcasts reach every member."""
        return Room(self.hub, names)

    async def broadcast(self, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` to every connection (with several arguments when given `more`)."""
        await self.hub.publish(Target(), Outgoing(event, pack(data, more)))

    async def emit(self, sid: str, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` to the connection `sid`, from anywhere (no-op if it is gone)."""
        await self.hub.publish(Target(sid=sid), Outgoing(event, pack(data, more)))

    async def rooms_of(self, sid: str) -> frozenset[str]:
        """The rooms the connection `sid` is in."""
        conn = self.hub.index.connections.get(sid)
        if conn is not None:
            return frozenset(conn.rooms)
        return await self.backend.rooms_of(sid)

    # -- the server's hand on any connection, on whichever process holds it ----------------------

    async def join(self, sid: str, room: str) -> bool:
        """Put the connection `sid` in `room`; return whether the connection exists. Guards
        are not consulted (the server is trusted); `limits.max_rooms` still applies
        (`TooManyRooms`)."""
        return await self.hub.join_sid(sid, room)

    async def leave(self, sid: str, room: str) -> bool:
        """Take the connection `sid` out of `room`; return whether the connection exists."""
        return await self.hub.leave_sid(sid, room)

    async def disconnect(self, sid: str) -> None:
        """Close the connection `sid` from the server side (no-op if it is gone)."""
        await self.hub.disconnect_sid(sid)

    async def call(self, sid: str, event: str, data: Any = None, *, timeout: float = 5.0) -> Any:
        """Send `event` to the connection `sid` and return what the client acknowledges it
        with (several values as a list).

        Raises `TimeoutError` when no answer comes in `timeout` seconds, and
        `roomcast.ConnectionClosed` when the connection is gone or closes first (at once for
        a sid no process holds).
        """
        return await self.hub.call(sid, event, data, timeout)

    @property
    def connections(self) -> frozenset[str]:
        """The sids of this process's open connections."""
        return frozenset(self.hub.index.connections)

    # -- running ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the backend (its connection to the other processes). Call `stop` from the
        same task (an ASGI lifespan does); `async with app:` does both."""
        if self._running is None:
            stack = AsyncExitStack()
            await stack.enter_async_context(self.backend.run())
            self._running = stack

    async def stop(self) -> None:
        """Stop the backend; connections still open are served by this process alone."""
        running, self._running = self._running, None
        if running is not None:
            await running.aclose()

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

    def __repr__(self) -> str:
        return f"<App routes={len(self.events)} connections={len(self.hub.index.connections)}>"


__all__ = ["App", "Guard"]

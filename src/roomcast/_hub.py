"""The app's core: this process's connections, the dispatch of their events, and delivery.

Three kinds of caller use it, each through a narrow face:

- transports, as their connections open, send events and close: `opened`, `received`,
  `closed` (reached as `app.hub`);
- the backend, with what other processes broadcast: `deliver` and the `local_*` answers (the
  `Node` protocol of `roomcast.backends`);
- requests and room handles: `join`, `leave`, `track`, `untrack`, `publish`, `members`,
  `presence`, `endpoint` (the `Host` protocol of `_request.py`);
- the app, for the server's hand on any connection: `join_sid`, `leave_sid`,
  `disconnect_sid`, `call`: on a connection of this process they act at once, on another
  they go through `backend.command` to the process that holds it (`perform` there).

A broadcast is delivered here first, from `LocalRooms`, then handed to the backend for the
other processes; one from another process comes back in through `deliver`, and goes no
further.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence, Set
from typing import Any

import anyio

from ._connection import Answer, Connection, State
from ._exceptions import (
    BackendUnavailable,
    ConnectionClosed,
    EventError,
    JoinRefused,
    RateLimited,
    Reject,
    TooLarge,
    TooManyRooms,
    UnknownEvent,
)
from ._handlers import Endpoint
from ._history import Entry, HistoryRules
from ._limits import Limits, Stats, TokenBucket
from ._message import Outgoing, Target
from ._presence import Batch, Diffs, Track, check_key, check_meta, grouped, new_track
from ._recovery import Claim, Recovery
from ._request import Ack, Request
from ._resume import Resumption
from ._rooms import LocalRooms, check_room_name, group
from ._routing import Router
from ._transport import Transport
from .backends import Backend

logger = logging.getLogger("roomcast")

INTERNAL_ERROR_MESSAGE = "Internal server error."

CallNext = Callable[[], Awaitable[Any]]
"""What a middleware calls to run the rest of the chain; it returns the handler's result."""
Middleware = Callable[[Request, CallNext], Awaitable[Any]]
"""`async def middleware(req, call_next)`: runs around every event's handler."""


class Hub:
    """What transports call as connections come, send events and go (`app.hub`)."""

    def __init__(
        self,
        app: Any,
        router: Router,
        backend: Backend,
        limits: Limits,
        max_room_name: int,
        clock: Callable[[], float],
        presence_window: float,
    ) -> None:
        self.app = app
        self.router = router
        self.backend = backend
        self.limits = limits
        self.stats = Stats()
        self.max_room_name = max_room_name
        self.clock = clock
        self.index = LocalRooms()
        self.connect_hooks: list[Endpoint] = []
        self.disconnect_hooks: list[Endpoint] = []
        self.guards: list[tuple[str, Endpoint]] = []
        self.middleware: list[Middleware] = []
        self.fallback: Endpoint | None = None
        self.diffs = Diffs(self._send_presence, presence_window)
        self.history = HistoryRules()
        self.resumption: Resumption | None = None
        """Connection-state recovery, while a transport recovers connections
        (`recover_with`)."""
        backend.bind(self)

    def recover_with(self, log: Recovery) -> None:
        """Recover the connections that drop, with `log` (one transport's, at most)."""
        if self.resumption is not None:
            raise ValueError("The app already recovers connections through another transport.")
        self.resumption = Resumption(log, self.index, self.backend)

    # -- what transports call ------------------------------------------------------------------

    async def opened(
        self,
        sid: str,
        auth: Any,
        transport: Transport,
        environ: Mapping[str, Any] | None = None,
        *,
        peer: Any = None,
        claim: Claim | None = None,
    ) -> None:
        """Open the connection `sid` and run the connect hooks.

        `environ` is what the transport knows of the connection (for python-socketio, the
        WSGI-style environ of the HTTP request: headers, query string, remote address).
        `peer` is what `transport.send` will be given to reach it (by default, `sid`).
        `claim` (from `recovery.claim`) recovers a dropped connection: `sid` is its sid, and
        it gets its rooms, its session and the events it missed before anything else.

        Raises `Reject` when a hook refuses it (a hook that fails otherwise is logged and
        refuses with a generic reason); the connection is then already forgotten.
        """
        conn = Connection(
            sid, transport, sid if peer is None else peer, environ if environ is not None else {}
        )
        if self.limits.rate is not None:
            conn.bucket = TokenBucket(self.limits.rate, self.limits.burst, self.clock())
        resumption = self.resumption
        if resumption is not None:
            conn.since = resumption.log.number
        self.index.add(conn)
        try:
            if claim is not None and claim.origin is not None:
                assert resumption is not None  # only a transport that recovers claims
                await self.backend.add(sid)
                await resumption.restore_from(claim.origin, conn, claim)
            else:
                rooms: list[str] = []
                if claim is not None:
                    assert resumption is not None
                    rooms = await resumption.restore(conn, claim)
                await self.backend.add(sid)
                for room in rooms:
                    await self.backend.join(sid, room)
        except BaseException:  # the backend's own word, such as "start the app first"
            conn.move(State.CLOSING)
            self.index.remove(conn)
            conn.move(State.CLOSED)
            raise
        try:
            request = Request(self, conn, "connect", auth)
            for hook in self.connect_hooks:
                await hook(request)
        except Reject:
            await self._end(conn, hooks=False)
            raise
        except Exception as exc:
            await self._end(conn, hooks=False)
            logger.exception("An on_connect hook failed (sid %s)", sid)
            raise Reject(INTERNAL_ERROR_MESSAGE) from exc
        except BaseException:
            await self._end(conn, hooks=False)
            raise
        if conn.state is State.CONNECTING:  # not closed while its hooks ran
            conn.move(State.OPEN)

    async def received(
        self,
        sid: str,
        event: str,
        data: Any,
        ack: Ack | None,
        *,
        args: tuple[Any, ...] | None = None,
    ) -> None:
        """Run the handler of `event` for `sid`; `ack` is `None` when none was asked for.
        `args`: every argument the client sent, when it may send several (`data` is then the
        one, or a list of several: `roomcast._message.fold`).

        Events of one connection run one at a time, in the order this is called. A transport
        cancels the call still running for a connection that closes (before it calls
        `closed`), as Phoenix ends a channel's process: both of roomcast's transports do.
        """
        conn = self.index.connections.get(sid)
        if conn is None:
            return
        # Cheap refusals come first, before the event waits for its turn.
        try:
            if conn.bucket is not None and not conn.bucket.take(self.clock()):
                self.stats.rate_limited += 1
                raise RateLimited("Too many events: slow down.")
            self.limits.check_event(event, data)
        except EventError as exc:
            if isinstance(exc, TooLarge):
                self.stats.too_large += 1
            self._count(event, exc.code)
            await Request(self, conn, event, data, ack).fail(exc.code, str(exc))
            return
        async with conn.lock:
            if not conn.reachable:
                return
            request = Request(self, conn, event, data, ack, args)
            outcome = "ok"
            try:
                if self.middleware:
                    result = await self._through_middleware(request, 0)
                else:
                    result = await self._handle(request)
                if result is not None:
                    await request.respond(result)
            except EventError as exc:
                outcome = exc.code
                await request.fail(exc.code, str(exc), exc.details)
            except Exception:
                outcome = "internal"
                logger.exception("The handler of %r failed (sid %s)", event, sid)
                await request.fail("internal", INTERNAL_ERROR_MESSAGE)
            finally:
                self._count(event, outcome)
            # A client that asked for an acknowledgement always gets one.
            await request.respond(None)

    def _count(self, event: Any, outcome: str) -> None:
        """Count one handled event by its route (events no route names count together, so
        that what clients send cannot make new counters) and its outcome."""
        routed = isinstance(event, str) and self.router.endpoint(event) is not None
        outcomes = self.stats.events.setdefault(event if routed else "", {})
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    async def _handle(self, request: Request) -> Any:
        """Run the handler of `request`'s event: its route's, else the fallback."""
        event = request.event
        endpoint = self.router.endpoint(event) if isinstance(event, str) else None
        if endpoint is None:
            endpoint = self.fallback
            if endpoint is None:
                raise UnknownEvent(f"No route handles the event {event!r}.")
        return await endpoint(request)

    async def _through_middleware(self, request: Request, index: int) -> Any:
        """Run middleware `index` around the rest of the chain, the handler innermost."""
        if index == len(self.middleware):
            return await self._handle(request)
        return await self.middleware[index](
            request, lambda: self._through_middleware(request, index + 1)
        )

    async def closed(self, sid: str, *, resumable: str | None = None) -> None:
        """The connection `sid` closed: run the disconnect hooks, then forget it. With
        `resumable` (its private id), it dropped without asking: it may be recovered within
        the recovery window."""
        conn = self.index.connections.get(sid)
        if conn is None:
            return
        resumption = self.resumption
        if resumable is None or resumption is None:
            await self._end(conn, hooks=True)
            return
        rooms = frozenset(conn.rooms)
        with resumption.dropping(sid, rooms):  # its rooms' broadcasts are still wanted
            await self._end(conn, hooks=True)
            resumption.log.dropped(sid, resumable, rooms, conn.session, conn.since)
        try:
            await self.backend.dropped(resumable, resumption.log.window)
        except Exception:
            logger.exception("The backend could not keep the private id of %s", sid)

    async def claim(self, pid: Any, offset: Any) -> Claim | None:
        """Claim the dropped connection of the private id `pid`, here or on the process that
        holds it; `None` when nothing can be given back (or nothing is recovered)."""
        if self.resumption is None:
            return None
        return await self.resumption.claim(pid, offset)

    async def _end(self, conn: Connection, *, hooks: bool) -> None:
        """Close `conn`: it receives nothing from now on, its disconnect hooks run to the
        end (it is still in its rooms for them), then it leaves every room, here and in the
        backend, whatever happens to the caller."""
        if not conn.reachable:
            return  # already closing
        conn.move(State.CLOSING)
        for answer in conn.calls or ():
            answer.close()
        rooms = self.index.detach(conn)
        with anyio.CancelScope(shield=True):
            try:
                if hooks:
                    request = Request(self, conn, "disconnect", None)
                    for hook in self.disconnect_hooks:
                        try:
                            await hook(request)
                        except Exception:
                            logger.exception("An on_disconnect hook failed (sid %s)", conn.sid)
            finally:
                for room in list(conn.tracks or ()):
                    try:
                        await self.untrack(conn, room)
                    except Exception:
                        logger.exception("The backend could not untrack %s", conn.sid)
                self.index.remove(conn)
                conn.move(State.CLOSED)
                try:
                    await self.backend.remove(conn.sid, rooms)
                except Exception:
                    logger.exception("The backend could not forget the connection %s", conn.sid)

    # -- what requests and room handles call ---------------------------------------------------

    def check_room_name(self, name: Any) -> str:
        """Return `name` if it is a valid room name here, else raise `InvalidRoomName`."""
        return check_room_name(name, self.max_room_name)

    async def join(self, request: Request, conn: Connection, room: Any) -> None:
        name = self.check_room_name(room)
        if not conn.reachable or name in conn.rooms:
            return
        self._check_room_count(conn)
        for pattern, guard in self.guards:
            if fnmatch.fnmatchcase(name, pattern) and not await guard(request, name):
                raise JoinRefused(f"Joining the room {name!r} is not allowed.")
        await self._join(conn, name)

    def _check_room_count(self, conn: Connection) -> None:
        max_rooms = self.limits.max_rooms
        if max_rooms is not None and len(conn.rooms) >= max_rooms:
            raise TooManyRooms(f"A connection may be in at most {max_rooms} rooms.")

    async def _join(self, conn: Connection, name: str) -> None:
        if self.index.join(conn, name):
            await self.backend.join(conn.sid, name)

    async def leave(self, conn: Connection, room: str) -> None:
        if room in conn.rooms and conn.reachable:
            await self.untrack(conn, room)
        if self.index.leave(conn, room):
            await self.backend.leave(conn.sid, room)

    # -- presence ------------------------------------------------------------------------------

    async def track(
        self, request: Request, conn: Connection, room: Any, meta: Any, key: Any
    ) -> None:
        name = self.check_room_name(room)
        key = conn.sid if key is None else check_key(key)
        meta = check_meta(meta, self.limits)
        await self.join(request, conn, name)
        if name not in conn.rooms or not conn.reachable:
            return
        track = new_track(conn.sid, key, meta)
        old = self.index.track(conn, name, track)
        await self.backend.track(name, track, old)
        await self.diffs.changed(
            name, (track,), () if old is None else (old,), conn if old is None else None
        )

    async def untrack(self, conn: Connection, room: str) -> None:
        track = self.index.untrack(conn, room)
        if track is not None:
            await self.backend.untrack(room, track)
            await self.diffs.changed(room, leaves=(track,))

    async def presence(self, room: str) -> dict[str, list[dict[str, Any]]]:
        return grouped(await self.backend.presence(room))

    async def _send_presence(self, room: str, batch: Batch) -> None:
        """Send one room's coalesced changes: the state to the connections that tracked in it
        for the first time, then the diff to every member, on every process."""
        newcomers = [
            conn
            for conn in batch.newcomers
            if conn.reachable and conn.tracks is not None and room in conn.tracks
        ]
        if newcomers:
            try:
                presences = await self.presence(room)
            except BackendUnavailable as exc:
                # What this process knows; the diffs from the others complete it.
                logger.warning("The presence state of %r is this process's only: %s", room, exc)
                presences = grouped(self.index.presence(room))
            message = Outgoing("presence_state", {"room": room, "presences": presences})
            for transport, peers in group(newcomers):
                await transport.send(peers, message.encoded(transport))
        diff = batch.diff(room)
        if diff is None:
            return
        try:
            await self.publish(Target(frozenset((room,))), Outgoing("presence_diff", diff))
        except BackendUnavailable as exc:
            logger.warning("The presence changes of %r reached this process only: %s", room, exc)
        except Exception:
            logger.exception("The presence changes of the room %r could not be sent", room)

    async def publish(self, target: Target, message: Outgoing) -> None:
        """Send `message` to every connection `target` names: here, then in the others; and
        keep it in the history of its rooms that keep one."""
        if self.resumption is not None:
            self.resumption.log.record(target, message)
        await self._deliver(target, message)
        if target.rooms is not None and self.history.rules:
            for room in target.rooms:
                rule = self.history.rule_of(room)
                if rule is not None:
                    await self.backend.keep(room, rule, message.event, message.data)
        if target.sid is None or target.sid not in self.index.connections:
            await self.backend.publish(target, message)

    async def room_history(self, room: str, after: str | None, limit: int | None) -> list[Entry]:
        if after is not None and not isinstance(after, str):
            raise TypeError(f"An offset is a string, not {type(after).__name__}.")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"limit must be None or an int of 0 or more, not {limit!r}.")
        rule = self.history.rule_of(room)
        if rule is None or limit == 0:
            return []
        return await self.backend.history(room, rule, after, limit)

    async def members(self, rooms: Collection[str]) -> frozenset[str]:
        if len(rooms) == 1:
            (room,) = rooms
            return await self.backend.members(room)
        members: set[str] = set()
        for room in rooms:
            members |= await self.backend.members(room)
        return frozenset(members)

    def endpoint(self, event: str) -> Endpoint | None:
        return self.router.endpoint(event)

    # -- the server's hand on any connection --------------------------------------------------

    async def join_sid(self, sid: str, room: Any) -> bool:
        name = self.check_room_name(room)
        return bool(await self._command(sid, "join", (name,)))

    async def leave_sid(self, sid: str, room: Any) -> bool:
        name = self.check_room_name(room)
        return bool(await self._command(sid, "leave", (name,)))

    async def disconnect_sid(self, sid: str) -> None:
        await self._command(sid, "disconnect", ())

    async def call(self, sid: str, event: str, data: Any, timeout: float) -> Any:
        if not isinstance(event, str):
            raise TypeError(f"An event name must be a string, not {type(event).__name__}.")
        conn = self.index.connections.get(sid)
        if conn is not None:
            return await self._call(conn, event, data, timeout)
        # The process that holds it waits `timeout`; this one as long, and the way there and
        # back.
        return await self.backend.command(sid, "call", (event, data, timeout), timeout=timeout)

    async def _command(self, sid: str, command: str, args: Sequence[Any]) -> Any:
        """Run `command` on `sid` here if it is a connection of this process, else on the
        process that holds it. `join` and `leave` answer `False` for a connection that does
        not exist, `disconnect` does nothing."""
        try:
            if sid in self.index.connections:
                return await self.perform(sid, command, args)
            return await self.backend.command(sid, command, args, timeout=0.0)
        except ConnectionClosed:
            return False
        except TimeoutError as exc:
            raise BackendUnavailable(f"The process holding {sid!r} did not answer.") from exc

    async def _call(self, conn: Connection, event: str, data: Any, timeout: float) -> Any:
        if not conn.reachable:
            raise ConnectionClosed(f"The connection {conn.sid!r} is closed.")
        answer = Answer()
        if conn.calls is None:
            conn.calls = set()
        conn.calls.add(answer)
        forget: Callable[[], None] | None = None
        try:
            forget = await conn.transport.ask(conn.peer, event, data, answer.set)
            with anyio.fail_after(timeout):
                await answer.arrived.wait()
        finally:
            conn.calls.discard(answer)
            if forget is not None:
                forget()
        if answer.closed:
            raise ConnectionClosed(f"The connection {conn.sid!r} closed before it answered.")
        return answer.value

    # -- what the backend calls (`roomcast.backends.Node`) -------------------------------------

    async def perform(self, sid: str | None, command: str, args: Sequence[Any]) -> Any:
        if sid is None:
            if self.resumption is None:
                raise ConnectionClosed("This process does not recover connections.")
            return self.resumption.answer(command, args)
        conn = self.index.connections.get(sid)
        if conn is None or not conn.reachable:
            raise ConnectionClosed(f"No connection {sid!r} is open.")
        if command == "join":
            name = self.check_room_name(args[0])
            if name not in conn.rooms:
                self._check_room_count(conn)
                await self._join(conn, name)
            return True
        if command == "leave":
            await self.leave(conn, self.check_room_name(args[0]))
            return True
        if command == "disconnect":
            await conn.transport.close(sid)
            return True
        if command == "call":
            event, data, timeout = args
            return await self._call(conn, event, data, timeout)
        raise ValueError(f"Unknown command {command!r}.")

    def keeps(self, room: str) -> bool:
        """Whether `room`'s broadcasts are wanted here though no connection here is in it:
        one dropping, dropped (it may come back) or being recovered is."""
        return self.resumption is not None and self.resumption.keeps(room)

    async def presences_gone(self, room: str, tracks: Sequence[Track]) -> None:
        await self.diffs.changed(room, leaves=tracks)

    def local_presence(self, room: str) -> list[Track]:
        return self.index.presence(room)

    def local_tracks(self) -> Iterable[tuple[str, Track]]:
        return self.index.tracks()

    async def deliver(
        self, target: Target, message: Outgoing, *, unless_in: Collection[str] = ()
    ) -> None:
        """Send `message`, from another process, to the connections here that `target`
        names, but the members of `unless_in` (logged first, while connections are
        recovered)."""
        if self.resumption is not None:
            self.resumption.log.record(target, message, unless_in)
        await self._deliver(target, message, unless_in)

    async def _deliver(
        self, target: Target, message: Outgoing, unless_in: Collection[str] = ()
    ) -> None:
        """Send `message` to the connections here that `target` names: encoded once per
        transport, handed to each transport once, never a task per receiver."""
        for transport, peers in self.index.receivers(target, unless_in):
            if peers:
                self.stats.deliveries += len(peers)
                await transport.send(peers, message.encoded(transport))
        if self.resumption is not None:
            self.resumption.saw(target, unless_in, message)

    def local_members(self, room: str) -> Set[str]:
        return self.index.members(room)

    def local_rooms_of(self, sid: str) -> frozenset[str]:
        conn = self.index.connections.get(sid)
        return frozenset() if conn is None else frozenset(conn.rooms)

    def local_rooms(self) -> Collection[str]:
        return self.index.rooms()

    def local_connections(self) -> Collection[str]:
        return self.index.connections.keys()


__all__ = ["INTERNAL_ERROR_MESSAGE", "CallNext", "Hub", "Middleware"]

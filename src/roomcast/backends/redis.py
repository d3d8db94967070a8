"""Rooms shared by many processes through Redis: `RedisBackend` (extra `roomcast[redis]`).

```python
app = App(backend=RedisBackend("redis://127.0.0.1:6379/0"))
async with app:          # or socketio.ASGIApp(sio, on_startup=app.start, on_shutdown=app.stop)
    ...
```

How it works:

- Each process (a *node*) delivers to its own connections itself (the core does, before the
  backend sees a broadcast); the backend carries the broadcast to the other nodes through
  Redis pub/sub, and hands what they publish to this node's core. A broadcast does not wait
  for Redis: it joins this node's outbox, which one task sends in order, as many messages per
  round trip as are waiting (a full outbox makes the next broadcast wait); leaving `run()`
  sends what is left first.
- Membership is mirrored into Redis sets (`room:<name>` → sids, `rooms:<sid>` → rooms), which
  answer `members`, `count` and `rooms_of` for the whole deployment; presences into a hash per
  room (`presence:<room>`), which answers `presence()`.
- The server's hand on a connection of another node (`app.join`, `app.leave`,
  `app.disconnect`, `app.call`) goes to that node's channel as a command; the node runs it and
  publishes the one answer (a value or an error) to the asking node's channel. The asking node
  waits for the command's own time plus `timeout`, and forgets it then, whatever comes after.
- There is one pub/sub channel per room; a node subscribes to a room's channel only while it
  has local members there, so it receives and decodes only the messages it has receivers for.
  A broadcast to several rooms is published once per room; a receiver in two of them gets it
  from the first of those rooms (in sorted order) only.
- A node keeps an `alive:<node>` key with a time to live and refreshes it; every node reaps,
  atomically, the connections of any node whose key has expired, so a process killed without
  cleanup leaves no member behind after `dead_after` plus one `heartbeat`; the node that reaps
  sends the members of each room the presences that left (`presence_diff`). A node that stops
  cleanly tells the other nodes' members of its presences' leaving itself.
- Its listener and heartbeat are supervised: one that fails is logged with its traceback and
  started again, so no message can stop them (`healthy` says whether all is well); the
  publisher logs and drops a batch that Redis refuses, and goes on.
- When Redis goes away, local delivery goes on; operations that need Redis raise
  `BackendUnavailable` at once. The node reconnects with backoff, subscribes again, wipes what
  Redis still holds of it and registers its current connections again. Messages published
  while a node was cut off are not replayed (pub/sub is at most once).

Redis's client is asyncio-based, so this backend runs on asyncio only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import Any

import anyio

try:
    import redis.asyncio as aioredis
    import redis.exceptions
except ImportError as exc:
    raise ImportError(
        f"roomcast.backends.redis needs redis-py ({exc.name} is missing): "
        "pip install 'roomcast[redis]'"
    ) from exc
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from .._exceptions import (
    BackendRefused,
    BackendUnavailable,
    ConnectionClosed,
    EventError,
    error_for,
)
from .._history import Entry, HistoryRule
from .._message import Outgoing, Target
from .._presence import Track, grouped
from .._tasks import Supervisor
from ._base import Backend
from ._redis_wire import (
    HISTORY,
    KEEP,
    REAP,
    REMOVE,
    STREAM_ID,
    frame,
    frame_prefix,
    hide_password,
    unframe,
)

__all__ = ["RedisBackend"]

logger = logging.getLogger("roomcast")

_REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)
_UNREACHABLE = "The shared room state (Redis) is unreachable."
OUTBOX = 1024
"""Publications waiting for Redis at most, per node; the next broadcast waits for room."""
BATCH = 256
"""Publications, or writes, sent to Redis in one round trip at most."""
WRITES = 4096
"""Groups of writes (a join, a track, ...) waiting for Redis at most, per node; the next one
waits for room."""

_Publication = tuple[str, bytes, float]  # channel, frame, when it joined the outbox
_Write = tuple[tuple[tuple[Any, ...], ...], anyio.Event]


class RedisBackend(Backend):
    """Rooms shared by every process that uses the same Redis and `prefix`.

    `dead_after`: seconds after which a silent node's connections are removed;
    `heartbeat`: how often a node proves it is alive and looks for dead ones;
    `timeout`: the longest a Redis operation may take before `BackendUnavailable`;
    `max_connections`: connections to Redis this node opens at most (more operations at once
    wait for one, within `timeout`), besides its pub/sub connection.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        prefix: str = "roomcast:",
        dead_after: float = 10.0,
        heartbeat: float = 2.0,
        timeout: float = 2.0,
        max_backoff: float = 5.0,
        max_connections: int = 50,
    ) -> None:
        if heartbeat >= dead_after:
            raise ValueError("heartbeat must be shorter than dead_after.")
        self.url = url
        self.prefix = prefix
        self.dead_after = dead_after
        self.heartbeat = heartbeat
        self.timeout = timeout
        self.max_backoff = max_backoff
        self.max_connections = max_connections
        self.node_id = secrets.token_hex(8)
        """This process's name among the nodes."""
        self._own_frames = frame_prefix(self.node_id)
        self._redis: aioredis.Redis | None = None
        self._pubsub: PubSub | None = None
        self._available = False
        self._connected = anyio.Event()
        self._outbox: MemoryObjectSendStream[_Publication] | None = None
        self._writes: MemoryObjectSendStream[_Write] | None = None
        self._waiting_writes: MemoryObjectReceiveStream[_Write] | None = None
        self._tasks: TaskGroup | None = None
        self._subscribed: set[str] = set()
        """The rooms whose channels this node is subscribed to."""
        self._command_ids = itertools.count()
        self._waiting: dict[int, list[Any]] = {}
        """The commands sent to other nodes, by id: an event, then the answer once it came."""
        self.publish_lag = 0.0
        """How long the last batch of publications waited in the outbox, in seconds."""
        self.publish_failures = 0
        """Publications to the other nodes dropped: Redis refused them or was unreachable."""
        self.supervisor = Supervisor("RedisBackend")
        """Runs the listener and the heartbeat; `supervisor.restarts` counts their failures."""

    # -- life ----------------------------------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether Redis is reachable now, as far as this node knows."""
        return self._available

    @property
    def healthy(self) -> bool:
        """Whether Redis is reachable and every background task runs without failing."""
        return self._available and self.supervisor.healthy

    @contextlib.asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "RedisBackend runs on asyncio only (redis-py's client is asyncio-based), "
                "not on trio."
            ) from None
        # A blocking pool: many operations at once (a crowd disconnecting) wait for a free
        # connection, instead of failing as if Redis were down.
        pool = aioredis.BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.max_connections,
            timeout=self.timeout,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        self._connected = anyio.Event()
        try:
            await self._probe()
            outbox_in, outbox = anyio.create_memory_object_stream[_Publication](OUTBOX)
            sent_all = anyio.Event()
            writes_in, writes = anyio.create_memory_object_stream[_Write](WRITES)
            self._waiting_writes = writes
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                tasks.start_soon(self.supervisor.run, "listener", self._listen)
                tasks.start_soon(self.supervisor.run, "heartbeat", self._beat)
                tasks.start_soon(self._publish_from, outbox, sent_all)
                tasks.start_soon(self._write_from, writes)
                self._outbox = outbox_in
                self._writes = writes_in
                # Start connected when Redis is there; when it is not, run locally and keep
                # trying.
                with anyio.move_on_after(self.timeout):
                    await self._connected.wait()
                try:
                    yield
                finally:
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout):
                        await self._farewell()
                    # What this node published goes out before it stops, unless Redis cannot
                    # take it.
                    self._outbox = self._writes = None
                    writes_in.close()
                    outbox_in.close()
                    with anyio.CancelScope(shield=True), anyio.move_on_after(self.timeout):
                        await sent_all.wait()
                    tasks.cancel_scope.cancel()
        finally:
            self._tasks = None
            self._release_writes()
            with anyio.CancelScope(shield=True):
                await self._leave_cluster()

    async def _farewell(self) -> None:
        """Tell the other nodes' members that this node's presences leave with it."""
        rooms: dict[str, list[Track]] = {}
        for room, track in self.node.local_tracks():
            rooms.setdefault(room, []).append(track)
        for room, tracks in rooms.items():
            diff = {"room": room, "joins": {}, "leaves": grouped(tracks)}
            try:
                await self.publish(Target(frozenset((room,))), Outgoing("presence_diff", diff))
            except BackendUnavailable:
                return

    async def _probe(self) -> None:
        """Raise `BackendRefused` when Redis answers but refuses this backend for good (a
        database out of range, wrong credentials, or a server that is not Redis); when it
        does not answer at all, the backend runs locally and keeps trying."""
        assert self._redis is not None
        try:
            with anyio.fail_after(self.timeout):
                await self._redis.ping()
        except (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError) as exc:
            raise BackendRefused(
                f"Redis at {self._where()} refused the credentials: {exc}"
            ) from exc
        except (*_REDIS_ERRORS, TimeoutError) as exc:
            logger.warning(
                "Redis at %s does not answer (%s); delivering locally only.", self._where(), exc
            )
        except redis.exceptions.RedisError as exc:
            raise BackendRefused(f"Redis at {self._where()} refused this backend: {exc}") from exc

    def _where(self) -> str:
        """The Redis URL, without its password."""
        return str(hide_password(self.url))

    async def _leave_cluster(self) -> None:
        if self._available:
            try:
                with anyio.fail_after(self.timeout):
                    await self._script(REAP, self.prefix, self.node_id)
                    await self._call("SREM", self._key("nodes"), self.node_id)
                    await self._call("DEL", self._key("alive", self.node_id))
            except (BackendUnavailable, TimeoutError):
                pass  # the survivors reap what is left
        self._available = False
        if self._pubsub is not None:
            await self._pubsub.aclose()
            self._pubsub = None
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
            self._redis = None

    def _check_running(self) -> None:
        if self._redis is None:
            raise RuntimeError(
                "RedisBackend runs background tasks: start the app first (`async with app:`, "
                "or app.start() and app.stop() in the ASGI lifespan)."
            )

    # -- membership ----------------------------------------------------------------------------

    async def add(self, sid: str) -> None:
        self._check_running()
        await self._mirror(
            ("HSET", self._key("owner"), sid, self.node_id),
            ("SADD", self._key("node", self.node_id), sid),
        )

    async def remove(self, sid: str, rooms: Collection[str]) -> None:
        await self._unsubscribe(rooms)
        # While Redis is down this node's entries are wiped and written again on return.
        await self._mirror(("EVAL", REMOVE, 0, self.prefix, sid, self.node_id))

    async def join(self, sid: str, room: str) -> None:
        if room not in self._subscribed:
            await self._subscribe(room)
        await self._mirror(
            ("SADD", self._key("room", room), sid), ("SADD", self._key("rooms", sid), room)
        )

    async def leave(self, sid: str, room: str) -> None:
        await self._unsubscribe((room,))
        await self._mirror(
            ("SREM", self._key("room", room), sid), ("SREM", self._key("rooms", sid), room)
        )

    async def members(self, room: str) -> frozenset[str]:
        sids = await self._call("SMEMBERS", self._key("room", room))
        return frozenset(sid.decode() for sid in sids)

    async def rooms_of(self, sid: str) -> frozenset[str]:
        rooms = await self._call("SMEMBERS", self._key("rooms", sid))
        return frozenset(room.decode() for room in rooms)

    # -- presence ------------------------------------------------------------------------------

    async def track(self, room: str, track: Track, replaces: Track | None) -> None:
        key = self._key("presence", room)
        commands: list[tuple[Any, ...]] = [
            ("HSET", key, track.ref, track.dump()),
            ("HSET", self._key("tracks", track.sid), room, track.ref),
        ]
        if replaces is not None:
            commands.append(("HDEL", key, replaces.ref))
        await self._mirror(*commands)

    async def untrack(self, room: str, track: Track) -> None:
        await self._mirror(
            ("HDEL", self._key("presence", room), track.ref),
            ("HDEL", self._key("tracks", track.sid), room),
        )

    async def presence(self, room: str) -> list[Track]:
        values = await self._call("HVALS", self._key("presence", room))
        return sorted(Track.load_many(values), key=lambda track: (track.at, track.ref))

    # -- history -------------------------------------------------------------------------------

    async def keep(self, room: str, rule: HistoryRule, event: str, data: Any) -> None:
        # With the other writes: many broadcasts' entries in one round trip.
        key, ttl = self._key("history", room), int(rule.ttl * 1000)
        await self._mirror(("EVAL", KEEP, 0, key, rule.size, ttl, frame("", [event, data])))

    async def history(
        self, room: str, rule: HistoryRule, after: str | None, limit: int | None
    ) -> list[Entry]:
        if after is not None and not STREAM_ID.fullmatch(after):
            raise ValueError(f"Not an offset of this history: {after!r}")
        entries = await self._script(
            HISTORY,
            self._key("history", room),
            str(int(rule.ttl * 1000)),
            after or "",
            "" if limit is None else str(limit),
        )
        return [Entry(offset.decode(), *unframe(fields[1])) for offset, fields in entries]

    # -- the server's hand on another node's connection -----------------------------------------

    async def command(self, sid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        owner = await self._call("HGET", self._key("owner"), sid)
        if owner is None or owner.decode() == self.node_id:
            raise ConnectionClosed(f"No connection {sid!r} is open.")
        return await self._command_on(owner.decode(), sid, command, args, timeout)

    # -- recovery through another node --------------------------------------------------------

    async def dropped(self, pid: str, ttl: float) -> None:
        await self._mirror(("SET", self._key("pid", pid), self.node_id, "PX", int(ttl * 1000)))

    async def recover(self, pid: str, command: str, args: Sequence[Any], *, timeout: float) -> Any:
        holder = await self._call("GET", self._key("pid", pid))
        if holder is None or holder.decode() == self.node_id:
            raise ConnectionClosed("No other process holds this dropped connection.")
        return await self._command_on(holder.decode(), None, command, args, timeout)

    async def _command_on(
        self, node: str, sid: str | None, command: str, args: Sequence[Any], timeout: float
    ) -> Any:
        """Run `command` on the node `node` (about its connection `sid`, or about recovery
        for `None`) and return its one answer, or raise its error."""
        command_id = next(self._command_ids)
        waiting = self._waiting[command_id] = [anyio.Event()]
        try:
            envelope = ["q", command_id, self.node_id, sid, command, list(args)]
            channel = self._key("c", "node", node)
            await self._send((channel,), frame(self.node_id, envelope))
            with anyio.fail_after(timeout + self.timeout):
                await waiting[0].wait()
        finally:
            del self._waiting[command_id]
        outcome = waiting[1]
        if outcome[0] == "ok":
            return outcome[1]
        if outcome[0] == "closed":
            raise ConnectionClosed(outcome[1])
        if outcome[0] == "timeout":
            raise TimeoutError
        raise error_for(outcome[1], outcome[2])

    async def _perform(
        self, command_id: int, reply_to: str, sid: str | None, rest: list[Any]
    ) -> None:
        """Run a command of another node on a connection of this one, and answer it; a
        command that makes no sense is answered with an error, like any that fails."""
        outcome: list[Any]
        try:
            command, args = rest
            outcome = ["ok", await self.node.perform(sid, command, args)]
            answer = frame(self.node_id, ["r", command_id, outcome])  # may not be JSON
        except ConnectionClosed as exc:
            outcome = ["closed", str(exc)]
        except TimeoutError:
            outcome = ["timeout", ""]
        except EventError as exc:
            outcome = ["error", exc.code, str(exc)]
        except Exception:
            logger.exception("A command from node %s failed (sid %s)", reply_to, sid)
            outcome = ["error", "internal", "Internal server error."]
        if outcome[0] != "ok":
            answer = frame(self.node_id, ["r", command_id, outcome])
        with contextlib.suppress(BackendUnavailable):  # else the asking node times out
            await self._send((self._key("c", "node", reply_to),), answer)

    def _answered(self, command_id: int, outcome: list[Any]) -> None:
        waiting = self._waiting.get(command_id)
        if waiting is not None and len(waiting) == 1:  # one answer per command
            waiting.append(outcome)
            waiting[0].set()

    # -- broadcast -----------------------------------------------------------------------------

    async def publish(self, target: Target, message: Outgoing) -> None:
        if target.sid is not None:
            owner = await self._call("HGET", self._key("owner"), target.sid)
            if owner is None or owner.decode() == self.node_id:
                return
            channels = [self._key("c", "node", owner.decode())]
        elif target.rooms is None:
            channels = [self._key("c", "all")]
        else:
            channels = [self._key("c", "room", room) for room in sorted(target.rooms)]
        rooms = None if target.rooms is None else sorted(target.rooms)
        envelope = ["m", rooms, target.sid, target.exclude, message.event, message.data]
        envelope.append(message.mid)
        await self._send(channels, frame(self.node_id, envelope))

    async def _send(self, channels: Iterable[str], data: bytes) -> None:
        """Put `data` in the outbox, for each of `channels`."""
        outbox = self._outbox
        if not self._available or outbox is None:
            raise BackendUnavailable(_UNREACHABLE)
        try:
            for channel in channels:
                await outbox.send((channel, data, anyio.current_time()))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError) as exc:
            raise BackendUnavailable(_UNREACHABLE) from exc

    async def _publish_from(
        self, outbox: MemoryObjectReceiveStream[_Publication], sent_all: anyio.Event
    ) -> None:
        """Send this node's publications to Redis in order, each round trip taking as many
        as are waiting; end once the outbox is closed and empty."""
        async with outbox:
            async for first in outbox:
                self.publish_lag = anyio.current_time() - first[2]
                batch = [first]
                while len(batch) < BATCH:
                    try:
                        batch.append(outbox.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                try:
                    await self._publish_batch(batch)
                except Exception:
                    self.publish_failures += len(batch)
                    logger.exception("Dropped %d messages that Redis refused.", len(batch))
        sent_all.set()

    async def _publish_batch(self, batch: list[_Publication]) -> None:
        if self._available and self._redis is not None:
            try:
                with anyio.fail_after(self.timeout):
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, frame, _ in batch:
                            pipe.publish(channel, frame)
                        await pipe.execute()
                return
            except (*_REDIS_ERRORS, TimeoutError) as exc:
                self._lost(exc)
        self.publish_failures += len(batch)
        logger.warning(
            "Redis is unreachable: %d messages for other processes were dropped.", len(batch)
        )

    async def _receive_safely(self, channel: bytes, data: bytes) -> None:
        try:
            await self._receive(channel.decode(), data)
        except Exception:
            logger.exception("Dropped a message from Redis that could not be handled.")

    async def _receive(self, channel: str, data: bytes) -> None:
        if data.startswith(self._own_frames):
            return  # delivered locally when it was published: not even decoded
        kind, *envelope = unframe(data)
        if kind == "q":
            command_id, reply_to, sid, *rest = envelope
            assert self._tasks is not None
            self._tasks.start_soon(self._perform, command_id, reply_to, sid, rest)
            return
        if kind == "r":
            self._answered(*envelope)
            return
        rooms, sid, exclude, event, data, mid = envelope
        message = Outgoing(event, data, mid=mid)
        if rooms is None or len(rooms) == 1:
            target = Target(None if rooms is None else frozenset(rooms), sid, exclude)
            await self.node.deliver(target, message)
            return
        # Published once per room: from each room's channel, this node delivers to that
        # room's members here that are in no targeted room sorting before it.
        room = channel[len(self._key("c", "room", "")) :]
        earlier = [r for r in rooms if r < room]
        await self.node.deliver(
            Target(frozenset((room,)), None, exclude), message, unless_in=earlier
        )

    # -- Redis ---------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return self.prefix + ":".join(parts)

    async def _call(self, *args: Any) -> Any:
        if not self._available or self._redis is None:
            raise BackendUnavailable(_UNREACHABLE)
        try:
            with anyio.fail_after(self.timeout):
                return await self._redis.execute_command(*args)  # type: ignore[no-untyped-call]
        except (*_REDIS_ERRORS, TimeoutError) as exc:
            self._lost(exc)
            raise BackendUnavailable(_UNREACHABLE) from exc

    async def _script(self, script: str, *args: str | bytes) -> Any:
        return await self._call("EVAL", script, 0, *args)

    async def _mirror(self, *commands: tuple[Any, ...]) -> None:
        """Write this node's membership and presences into Redis, and return once they are
        written. The writes of many connections go in one round trip (a crowd joining does
        not take a Redis connection each, nor wait behind one another for one). While Redis
        is down, registration waits for the reconnection, which writes everything again."""
        writes = self._writes
        if not self._available or writes is None:
            return
        written = anyio.Event()
        try:
            await writes.send((commands, written))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return
        await written.wait()

    async def _write_from(self, writes: MemoryObjectReceiveStream[_Write]) -> None:
        """Send the waiting writes to Redis in order, each round trip taking as many as are
        waiting (up to `BATCH` commands); tell each writer once it is done, written or not."""
        async for first in writes:
            batch, count = [first], len(first[0])
            while count < BATCH:
                try:
                    write = writes.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
                batch.append(write)
                count += len(write[0])
            try:
                await self._write_batch(batch)
            finally:
                for _, written in batch:
                    written.set()

    async def _write_batch(self, batch: list[_Write]) -> None:
        if not self._available or self._redis is None:
            return
        try:
            with anyio.fail_after(self.timeout):
                async with self._redis.pipeline(transaction=False) as pipe:
                    for commands, _ in batch:
                        for command in commands:
                            pipe.execute_command(*command)
                    results = await pipe.execute(raise_on_error=False)
        except (*_REDIS_ERRORS, TimeoutError) as exc:
            self._lost(exc)
            return
        for result in results:
            if isinstance(result, Exception):
                logger.error("Redis refused a write: %s", result)

    def _release_writes(self) -> None:
        """Let go of whoever still waits for a write (the node has stopped)."""
        writes, self._waiting_writes = self._waiting_writes, None
        if writes is not None:
            while True:
                try:
                    _, written = writes.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                written.set()
            writes.close()

    def _lost(self, exc: BaseException) -> None:
        if self._available:
            logger.warning("Redis is unreachable (%r); delivering locally only.", exc)
        self._available = False
        self._connected = anyio.Event()

    async def _subscribe(self, room: str) -> None:
        if self._pubsub is not None and self._available:
            self._subscribed.add(room)
            try:
                await self._pubsub.subscribe(self._key("c", "room", room))
            except _REDIS_ERRORS as exc:
                self._lost(exc)

    async def _unsubscribe(self, rooms: Iterable[str]) -> None:
        """Stop receiving the broadcasts of those of `rooms` that this node no longer wants:
        no member here, and no dropped connection that may come back (`Node.keeps`)."""
        node = self.node
        gone = [
            room
            for room in rooms
            if room in self._subscribed and not node.local_members(room) and not node.keeps(room)
        ]
        self._subscribed.difference_update(gone)
        if gone and self._pubsub is not None and self._available:
            try:
                await self._pubsub.unsubscribe(*(self._key("c", "room", r) for r in gone))
            except _REDIS_ERRORS as exc:
                self._lost(exc)

    async def _listen(self) -> None:
        """Receive from Redis; on loss, reconnect with backoff and register again."""
        backoff = 0.05
        while True:
            try:
                pubsub = await self._reconnect()
                backoff = 0.05
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                    if not self._available:
                        break  # another operation saw Redis go; start over
                    if message is not None and message["type"] == "message":
                        await self._receive_safely(message["channel"], message["data"])
            except (*_REDIS_ERRORS, TimeoutError) as exc:
                self._lost(exc)
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, self.max_backoff)

    async def _reconnect(self) -> PubSub:
        assert self._redis is not None
        if self._pubsub is not None:
            with anyio.CancelScope(shield=True):
                await self._pubsub.aclose()
        self._pubsub = pubsub = self._redis.pubsub()
        node = self.node
        channels = [self._key("c", "all"), self._key("c", "node", self.node_id)]
        self._subscribed = set(node.local_rooms())
        channels += [self._key("c", "room", room) for room in self._subscribed]
        with anyio.fail_after(self.timeout):
            await pubsub.subscribe(*channels)
            # What Redis holds of this node is stale: wipe it and write the present.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._key("alive", self.node_id), 1, px=int(self.dead_after * 1000))
                pipe.sadd(self._key("nodes"), self.node_id)
                pipe.eval(REAP, 0, self.prefix, self.node_id)
                for sid in list(node.local_connections()):
                    pipe.hset(self._key("owner"), sid, self.node_id)
                    pipe.sadd(self._key("node", self.node_id), sid)
                    for room in node.local_rooms_of(sid):
                        pipe.sadd(self._key("room", room), sid)
                        pipe.sadd(self._key("rooms", sid), room)
                for room, track in list(node.local_tracks()):
                    pipe.hset(self._key("presence", room), track.ref, track.dump())
                    pipe.hset(self._key("tracks", track.sid), room, track.ref)
                await pipe.execute()
        self._available = True
        self._connected.set()
        logger.info("Connected to Redis as node %s.", self.node_id)
        return pubsub

    async def _beat(self) -> None:
        """Prove this node alive; reap the connections of nodes that are not; stop receiving
        the rooms kept only for dropped connections that were recovered or expired since."""
        while True:
            await anyio.sleep(self.heartbeat)
            if not self._available:
                continue
            try:
                await self._call(
                    "SET", self._key("alive", self.node_id), 1, "PX", int(self.dead_after * 1000)
                )
                reaped, *gone = await self._script(REAP, self.prefix, "")
                if reaped:
                    logger.info("Removed %d connections of nodes that stopped.", reaped)
                await self._presences_gone(gone)
                await self._unsubscribe(list(self._subscribed))
            except BackendUnavailable:
                pass

    async def _presences_gone(self, gone: list[bytes]) -> None:
        """Tell the members of each room of the presences that a dead node's reaping took
        out of it (`gone`: room, track, room, track, ...)."""
        rooms: dict[str, list[Track]] = {}
        for name, value in zip(gone[::2], gone[1::2], strict=True):
            rooms.setdefault(name.decode(), []).append(Track.load(value))
        for room, tracks in rooms.items():
            await self.node.presences_gone(room, tracks)

    def metrics(self) -> dict[str, float]:
        outbox = self._outbox
        waiting = 0 if outbox is None else outbox.statistics().current_buffer_used
        return {
            "available": float(self._available),
            "healthy": float(self.healthy),
            "publish_lag_seconds": self.publish_lag,
            "publish_failures_total": float(self.publish_failures),
            "outbox": float(waiting),
            "restarts_total": float(self.supervisor.restarts),
        }

    def __repr__(self) -> str:
        state = "available" if self._available else "unavailable"
        return f"<RedisBackend node={self.node_id} {state}>"

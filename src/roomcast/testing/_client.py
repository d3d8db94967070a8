"""`TestClient`: a client connected to an app through an in-memory transport."""

from __future__ import annotations

import collections
import itertools
import math
import secrets
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _codec
from .._app import App
from .._exceptions import ConnectionClosed, ConnectionRejected, Reject
from .._transport import Transport

DEFAULT_MAX_OUTSTANDING = 10_000  # events sent by a client and not yet handled

_Event = tuple[str, Any, Any]  # event, data, ack


@dataclass(frozen=True, slots=True)
class Message:
    """An event a client received: its name and its data, as decoded from the wire."""

    event: str
    data: Any


class MemoryTransport(Transport):
    """Carries events between an app and its test clients within this process."""

    def __init__(self) -> None:
        self.clients: dict[str, TestClient] = {}

    def encode(self, event: str, data: Any) -> _codec.Encoded:
        return _codec.encode([event, data])

    async def send(self, peers: Iterable[TestClient], encoded: Any) -> None:
        for client in peers:
            # The common case of `_push`, inline: room in the inbox and no reader to wake.
            received = client._received
            if client._arrived is None and len(received) < client._max_buffered:
                if client._accepting:
                    received.append(encoded)
            else:
                client._push(encoded)

    async def close(self, sid: str) -> None:
        client = self.clients.get(sid)
        if client is not None:
            await client._close(by_server=True)


_transports: weakref.WeakKeyDictionary[App, MemoryTransport] = weakref.WeakKeyDictionary()


def _transport_of(app: App) -> MemoryTransport:
    transport = _transports.get(app)
    if transport is None:
        transport = _transports[app] = MemoryTransport()
    return transport


class TestClient:
    """A client of `app` with no network, seeing exactly what a Socket.IO client would.

    ```python
    async with TestClient(app) as alice, TestClient(app) as bob:
        await alice.emit("ready", "chat")
        msg = await bob.receive(timeout=1.0)
    ```

    Entering connects (raising `ConnectionRejected` when an `on_connect` hook refuses);
    leaving disconnects. Payloads go through JSON both ways, as on the wire. At most
    `max_buffered` received events (by default the app's `limits.max_queued`) wait to be
    read; past that the app's `limits.slow_consumer` policy applies, as on a real transport:
    the server disconnects the client, or drops the oldest waiting event.
    """

    __test__ = False  # not a test class, whatever pytest thinks of the name

    _events: MemoryObjectSendStream[_Event]
    _events_out: MemoryObjectReceiveStream[_Event]

    def __init__(
        self,
        app: App,
        auth: Any = None,
        *,
        environ: Mapping[str, Any] | None = None,
        max_buffered: int | None = None,
    ) -> None:
        self.app = app
        self.auth = auth
        self.environ = dict(environ or {})
        self.sid = secrets.token_urlsafe(15)
        self._transport = _transport_of(app)
        limit = max_buffered if max_buffered is not None else app.limits.max_queued
        self._max_buffered: float = limit if limit is not None else math.inf
        self._ack_ids = itertools.count()
        self._acks: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._task_group: TaskGroup | None = None
        self._connected = False
        self._closed_by_server = False
        self._shed = False
        # The inbox: what the app sent and the client has not read, oldest first. It takes
        # events while `_accepting` (from connecting until the connection closes); a reader
        # waiting for the next one waits on `_arrived`.
        self._received: collections.deque[_codec.Encoded] = collections.deque()
        self._accepting = False
        self._arrived: anyio.Event | None = None

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self._connected

    async def __aenter__(self) -> TestClient:
        if self._task_group is not None:
            raise RuntimeError("A TestClient connects once; make a new one to reconnect.")
        self._accepting = True
        self._events, self._events_out = anyio.create_memory_object_stream[_Event](
            DEFAULT_MAX_OUTSTANDING
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._transport.clients[self.sid] = self
        try:
            auth = _codec.decode(_codec.encode(self.auth))
            await self.app.handle_connect(self.sid, auth, self._transport, self.environ, peer=self)
        except BaseException as exc:
            self._transport.clients.pop(self.sid, None)
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._close_streams()
            if isinstance(exc, Reject):
                raise ConnectionRejected(exc.reason) from exc
            raise
        self._connected = True
        self._task_group.start_soon(self._run_events)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._task_group is not None
        with anyio.CancelScope(shield=True):
            await self.disconnect()
        self._task_group.cancel_scope.cancel()
        try:
            # The block's own exception, if any, propagates unwrapped.
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._close_streams()
        return None

    async def emit(self, event: str, data: Any = None) -> None:
        """Send `event` with `data` to the app; returns once it is on its way."""
        await self._send(event, data, None)

    async def call(self, event: str, data: Any = None, *, timeout: float = 5.0) -> Any:
        """Send `event` and wait for its acknowledgement; return the ack payload as sent.

        An error acknowledgement (`{"error": {...}}`) is returned, not raised. Raises
        `TimeoutError` when no acknowledgement arrives in `timeout` seconds.
        """
        ack_id = next(self._ack_ids)
        arrived, payload = self._acks[ack_id] = (anyio.Event(), [])
        try:
            await self._send(event, data, ack_id)
            with anyio.fail_after(timeout):
                await arrived.wait()
        finally:
            del self._acks[ack_id]
        return payload[0]

    async def receive(self, *, timeout: float = 5.0) -> Message:
        """The next event the app sent this client.

        Raises `TimeoutError` when none arrives in `timeout` seconds, and `ConnectionClosed`
        once the connection is closed and every event sent before was received.
        """
        with anyio.fail_after(timeout):
            await anyio.lowlevel.checkpoint()
            while not self._received:
                if not self._accepting:
                    raise ConnectionClosed("The connection is closed.")
                if self._arrived is None:
                    self._arrived = anyio.Event()
                await self._arrived.wait()
        event, data = _codec.decode(self._received.popleft())
        return Message(event, data)

    def drain(self) -> list[Message]:
        """Every event received and not read yet, without waiting (an empty list if none)."""
        received, self._received = self._received, collections.deque()
        return [Message(*_codec.decode(encoded)) for encoded in received]

    async def disconnect(self) -> None:
        """Close the connection (no-op when already closed)."""
        await self._close(by_server=False)

    def _close_streams(self) -> None:
        self._stop_accepting()
        self._received.clear()  # unread events go with the client
        for stream in (self._events, self._events_out):
            stream.close()

    def _stop_accepting(self) -> None:
        self._accepting = False
        self._wake()  # a waiting reader finds the connection closed

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived.set()

    # -- the server side -----------------------------------------------------------------------

    def _push(self, encoded: _codec.Encoded) -> None:
        if not self._accepting:
            return
        received = self._received
        if len(received) >= self._max_buffered:
            stats = self.app.stats
            if self.app.limits.slow_consumer == "drop_oldest" and received:
                received.popleft()
                stats.events_dropped += 1
            else:
                if self._task_group is not None and self._connected and not self._shed:
                    self._shed = True  # closing: what else comes is dropped
                    stats.slow_consumers_disconnected += 1
                    self._task_group.start_soon(self._close, True)
                return
        received.append(encoded)
        self._wake()

    async def _send(self, event: str, data: Any, ack_id: int | None) -> None:
        if not self._connected:
            raise ConnectionClosed("The connection is closed.")
        # What the app receives went through the wire format, as over a real socket.
        event, data = _codec.decode(_codec.encode([event, data]))
        await self._events.send((event, data, ack_id))

    async def _run_events(self) -> None:
        async with self._events_out:
            async for event, data, ack_id in self._events_out:
                ack = None if ack_id is None else _Ack(self, ack_id)
                await self.app.handle_event(self.sid, event, data, ack)

    def _acknowledge(self, ack_id: int, encoded: _codec.Encoded) -> None:
        if not self._connected:
            return  # as over a socket: a closed connection receives no acknowledgement
        waiter = self._acks.get(ack_id)
        if waiter is not None and not waiter[0].is_set():
            waiter[1].append(_codec.decode(encoded))
            waiter[0].set()

    async def _close(self, by_server: bool) -> None:
        if not self._connected:
            return
        self._connected = False
        self._closed_by_server = by_server
        self._transport.clients.pop(self.sid, None)
        self._stop_accepting()
        self._events.close()
        await self.app.handle_disconnect(self.sid)

    def __repr__(self) -> str:
        state = "connected" if self._connected else "closed"
        return f"<TestClient sid={self.sid!r} {state}>"


class _Ack:
    """The acknowledgement callback of one event, as the app sees it."""

    __slots__ = ("_ack_id", "_client")

    def __init__(self, client: TestClient, ack_id: int) -> None:
        self._client = client
        self._ack_id = ack_id

    async def __call__(self, data: Any) -> None:
        self._client._acknowledge(self._ack_id, _codec.encode(data))

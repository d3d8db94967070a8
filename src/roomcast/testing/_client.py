"""`TestClient`: a client connected to an app through an in-memory transport."""

from __future__ import annotations

import collections
import itertools
import secrets
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar, overload

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .. import _codec
from .._app import App
from .._backlog import SHED, Backlog
from .._connection import REACHABLE, State, move
from .._exceptions import ConnectionClosed, ConnectionRejected, Reject
from .._handlers import Endpoint, to_async
from .._message import fold, pack, spread
from .._transport import Transport

DEFAULT_MAX_OUTSTANDING = 10_000  # events sent by a client and not yet handled

_Event = tuple[str, tuple[Any, ...], Any]  # event, its arguments, ack id
_Wire = tuple[_codec.Encoded, int]  # an event as encoded, and its size in bytes
_CLOSED: Any = object()  # what a pending call gets when the connection closes first
AnswerT = TypeVar("AnswerT", bound=Callable[[Any], Any])


@dataclass(frozen=True, slots=True)
class Message:
    """An event a client received: its name and its data, as decoded from the wire. `data`
    is its one argument, a list of several, or `None`; `args` are all of them."""

    event: str
    data: Any
    args: tuple[Any, ...] = field(default=(), compare=False)

    @classmethod
    def decoded(cls, encoded: _codec.Encoded) -> Message:
        event, *args = _codec.decode(encoded)
        return cls(event, fold(args), tuple(args))


class MemoryTransport(Transport):
    """Carries events between an app and its test clients within this process."""

    def __init__(self) -> None:
        self.clients: dict[str, TestClient] = {}

    def encode(self, event: str, data: Any, *, offset: str | None = None) -> _Wire:
        encoded = _codec.encode([event, *spread(data)])
        return encoded, len(encoded[0]) + sum(map(len, encoded[1]))

    async def ask(
        self, peer: TestClient, event: str, data: Any, answer: Callable[[Any], None]
    ) -> Callable[[], None]:
        answerer = peer._answerers.get(event)
        encoded = self.encode(event, data)
        if answerer is None or peer._state is not State.OPEN:
            # Nothing answers it: it arrives as any event does, for the test to see.
            await self.send((peer,), encoded)
        else:
            assert peer._task_group is not None
            peer._task_group.start_soon(peer._answer, answerer, encoded[0], answer)
        return _nothing

    async def send(self, peers: Iterable[TestClient], encoded: Any) -> None:
        wire, size = encoded
        for client in peers:
            if client._state not in REACHABLE:
                continue
            verdict = client._backlog.admit(size)
            if verdict:
                client._overflow(verdict, wire)
                continue
            client._received.append(wire)
            if client._arrived is not None:
                client._wake()

    async def close(self, sid: str) -> None:
        client = self.clients.get(sid)
        if client is not None:
            await client._close(by_server=True)


def _nothing() -> None:
    pass


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
    leaving disconnects: as on any transport, a handler of its events still running is
    cancelled, and the events it sent that had not started are dropped. Payloads
    go through JSON both ways, as on the wire. Received events wait to be read within the
    app's `limits.max_queued` events (or `max_buffered`) and `limits.max_queued_bytes`;
    past that the app's `limits.slow_consumer` policy applies, as on a real transport: the
    server disconnects the client, or drops the oldest waiting events.
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
        self._ack_ids = itertools.count()
        self._acks: dict[int, tuple[anyio.Event, list[Any]]] = {}
        self._task_group: TaskGroup | None = None
        self._state = State.CONNECTING
        self._closed_by_server = False
        # The inbox: what the app sent and the client has not read, oldest first, with its
        # sizes in `_backlog`. It takes events while the state is CONNECTING or OPEN; a
        # reader waiting for the next one waits on `_arrived`.
        self._received: collections.deque[_codec.Encoded] = collections.deque()
        self._backlog = Backlog(app.limits, max_buffered)
        self._arrived: anyio.Event | None = None
        self._handling: anyio.CancelScope | None = None
        self._events_task: int | None = None
        self._answerers: dict[str, Endpoint] = {}

    @property
    def connected(self) -> bool:
        """Whether the connection is open."""
        return self._state is State.OPEN

    async def __aenter__(self) -> TestClient:
        if self._task_group is not None:
            raise RuntimeError("A TestClient connects once; make a new one to reconnect.")
        self._events, self._events_out = anyio.create_memory_object_stream[_Event](
            DEFAULT_MAX_OUTSTANDING
        )
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._transport.clients[self.sid] = self
        try:
            auth = _codec.decode(_codec.encode(self.auth))
            await self.app.hub.opened(self.sid, auth, self._transport, self.environ, peer=self)
        except BaseException as exc:
            self._transport.clients.pop(self.sid, None)
            self._state = move(move(self._state, State.CLOSING), State.CLOSED)
            self._task_group.cancel_scope.cancel()
            await self._task_group.__aexit__(None, None, None)
            self._close_streams()
            if isinstance(exc, Reject):
                raise ConnectionRejected(exc.reason) from exc
            raise
        if self._state is State.CONNECTING:  # not closed by the server while connecting
            self._state = move(self._state, State.OPEN)
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
        try:
            # The block's own exception, if any, propagates unwrapped.
            await self._task_group.__aexit__(None, None, None)
        finally:
            self._close_streams()
        return None

    async def emit(self, event: str, data: Any = None, *more: Any) -> None:
        """Send `event` with `data` to the app (and `more`: several arguments, as a Socket.IO
        client's `emit("move", x, y)`); returns once it is on its way."""
        await self._send(event, pack(data, more), None)

    async def call(self, event: str, data: Any = None, *more: Any, timeout: float = 5.0) -> Any:
        """Send `event` (with `data`, and `more` as further arguments) and wait for its
        acknowledgement; return the ack payload as sent (several values as a list).

        An error acknowledgement (`{"error": {...}}`) is returned, not raised. Raises
        `TimeoutError` when no acknowledgement arrives in `timeout` seconds, and
        `ConnectionClosed` as soon as the connection closes without one.
        """
        ack_id = next(self._ack_ids)
        arrived, payload = self._acks[ack_id] = (anyio.Event(), [])
        try:
            await self._send(event, pack(data, more), ack_id)
            with anyio.fail_after(timeout):
                await arrived.wait()
        finally:
            del self._acks[ack_id]
        if payload[0] is _CLOSED:
            raise ConnectionClosed("The connection closed before the acknowledgement came.")
        return payload[0]

    @overload
    def on(self, event: str) -> Callable[[AnswerT], AnswerT]: ...
    @overload
    def on(self, event: str, answerer: Callable[[Any], Any]) -> None: ...

    def on(
        self, event: str, answerer: Callable[[Any], Any] | None = None
    ) -> Callable[[AnswerT], AnswerT] | None:
        """Answer the server's calls of `event` (`app.call`) with `answerer(data)`, sync or
        async: what it returns is the acknowledgement. Directly, or as a decorator. A call
        that nothing answers arrives as an ordinary event (`receive`), and times out.
        """
        if answerer is None:

            def decorator(func: AnswerT) -> AnswerT:
                self._answerers[event] = to_async(func)
                return func

            return decorator
        self._answerers[event] = to_async(answerer)
        return None

    async def receive(self, event: str | None = None, *, timeout: float = 5.0) -> Message:
        """The next event the app sent this client; with `event`, the next one of that name,
        leaving the others waiting, in order, for later calls (to step over periodic events).

        Raises `TimeoutError` when none arrives in `timeout` seconds, and `ConnectionClosed`
        once the connection is closed and every event sent before was received.
        """
        with anyio.fail_after(timeout):
            await anyio.lowlevel.checkpoint()
            while (index := self._find(event)) is None:
                if self._state not in REACHABLE:
                    raise ConnectionClosed("The connection is closed.")
                if self._arrived is None:
                    self._arrived = anyio.Event()
                await self._arrived.wait()
        if index == 0:
            self._backlog.taken()
            encoded = self._received.popleft()
        else:
            self._backlog.taken_at(index)
            encoded = self._received[index]
            del self._received[index]
        return Message.decoded(encoded)

    def _find(self, event: str | None) -> int | None:
        """Where the next event named `event` (any, for `None`) waits in the inbox."""
        if not self._received:
            return None
        if event is None:
            return 0
        for index, encoded in enumerate(self._received):
            if _codec.decode(encoded)[0] == event:
                return index
        return None

    async def expect_nothing(self, event: str | None = None) -> None:
        """Assert that no event (or none named `event`) has come, once everything the app is
        doing in this process has run as far as it can (`anyio.wait_all_tasks_blocked`): no
        fixed sleep. What is in flight elsewhere (another process, Redis) is not waited for.

        Raises `AssertionError` naming what came; what came stays waiting to be received.
        """
        await anyio.wait_all_tasks_blocked()
        came = [Message.decoded(encoded) for encoded in self._received]
        if event is not None:
            came = [message for message in came if message.event == event]
        if came:
            raise AssertionError(f"{self.sid} received {came!r}")

    def drain(self) -> list[Message]:
        """Every event received and not read yet, without waiting (an empty list if none)."""
        received, self._received = self._received, collections.deque()
        self._backlog.clear()
        return [Message.decoded(encoded) for encoded in received]

    async def disconnect(self) -> None:
        """Close the connection (no-op when already closed)."""
        await self._close(by_server=False)

    def _close_streams(self) -> None:
        self._received.clear()  # unread events go with the client
        self._backlog.clear()
        for stream in (self._events, self._events_out):
            stream.close()

    def _wake(self) -> None:
        arrived, self._arrived = self._arrived, None
        if arrived is not None:
            arrived.set()

    # -- the server side -----------------------------------------------------------------------

    def _overflow(self, verdict: int, encoded: _codec.Encoded) -> None:
        """Apply the backlog's verdict on an event that did not fit: shed this client, or
        drop the oldest events waiting (`verdict` of them) and keep `encoded`."""
        if verdict == SHED:
            self.app.stats.slow_consumers_disconnected += 1
            self._state = move(self._state, State.CLOSING)  # what else comes is dropped
            self._wake()
            assert self._task_group is not None
            self._task_group.start_soon(self._closing, True)
            return
        self.app.stats.events_dropped += verdict
        for _ in range(verdict):
            self._received.popleft()
        self._received.append(encoded)
        self._wake()

    async def _send(self, event: str, data: Any, ack_id: int | None) -> None:
        if self._state is not State.OPEN:
            raise ConnectionClosed("The connection is closed.")
        # What the app receives went through the wire format, as over a real socket.
        event, *args = _codec.decode(_codec.encode([event, *spread(data)]))
        await self._events.send((event, tuple(args), ack_id))

    async def _run_events(self) -> None:
        self._events_task = anyio.get_current_task().id
        with anyio.CancelScope() as self._handling:  # cancelled when the connection closes
            async with self._events_out:
                async for event, args, ack_id in self._events_out:
                    ack = None if ack_id is None else _Ack(self, ack_id)
                    await self.app.hub.received(self.sid, event, fold(args), ack, args=args)

    async def _answer(
        self, answerer: Endpoint, wire: _codec.Encoded, answer: Callable[[Any], None]
    ) -> None:
        """Answer one call of the server's with `answerer`, both ways through the wire format."""
        _, *args = _codec.decode(wire)
        value = await answerer(fold(args))
        if self._state is State.OPEN:
            answer(_codec.decode(_codec.encode(value)))

    def _acknowledge(self, ack_id: int, encoded: _codec.Encoded) -> None:
        if self._state is not State.OPEN:
            return  # as over a socket: a closed connection receives no acknowledgement
        waiter = self._acks.get(ack_id)
        if waiter is not None and not waiter[0].is_set():
            waiter[1].append(_codec.decode(encoded))
            waiter[0].set()

    async def _close(self, by_server: bool) -> None:
        if self._state is not State.OPEN:
            return  # closed, or closing already
        self._state = move(self._state, State.CLOSING)
        await self._closing(by_server)

    async def _closing(self, by_server: bool) -> None:
        """Finish closing: tell the app, and wake whoever waits for this connection."""
        self._closed_by_server = by_server
        self._transport.clients.pop(self.sid, None)
        self._wake()
        self._events.close()
        # The handler still running is cancelled, as over Socket.IO, but for one that closed
        # its own connection (it finishes, as it would anyway).
        if self._handling is not None and anyio.get_current_task().id != self._events_task:
            self._handling.cancel()
        for arrived, payload in self._acks.values():
            if not arrived.is_set():
                payload.append(_CLOSED)
                arrived.set()
        try:
            await self.app.hub.closed(self.sid)
        finally:
            self._state = move(self._state, State.CLOSED)

    def __repr__(self) -> str:
        state = "new" if self._task_group is None else self._state.name.lower()
        return f"<TestClient sid={self.sid!r} {state}>"


class _Ack:
    """The acknowledgement callback of one event, as the app sees it."""

    __slots__ = ("_ack_id", "_client")

    def __init__(self, client: TestClient, ack_id: int) -> None:
        self._client = client
        self._ack_id = ack_id

    async def __call__(self, data: Any) -> None:
        self._client._acknowledge(self._ack_id, _codec.encode(data))

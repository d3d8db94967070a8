"""python-socketio as a roomcast transport: `attach(app, sio)`.

```python
sio = socketio.AsyncServer(async_mode="asgi")
attach(app, sio)
asgi_app = socketio.ASGIApp(sio)
```

Every event of the namespace goes through the app. What python-socketio's public API cannot do
is done through a few internals of python-socketio and python-engineio (and, for the fast path,
of uvicorn, websockets and asyncio), all reached through `_internals.py`, whose functions say
what each reads, calls, wraps or replaces; `attach` refuses python-socketio and python-engineio
releases it is not tested with, and turns the fast path off, with a warning, for untested
uvicorn and websockets releases (`SocketIOTransport.fast_path`). On the server it is given, and
on the Engine.IO sockets that server makes, the adapter replaces these things:

- the server's `_handle_event` (an instance attribute over python-socketio's method): the events
  of this namespace, with the id of the acknowledgement the client asked for, come to the
  transport, and the others go on to python-socketio. So an error goes into the ack when the
  client asked for one, or else as the event `"error"`, and the ack is sent (with
  `_send_packet`) as soon as the handler responds;
- while the fast path is on, the Engine.IO `connect` handler (`sio.eio.handlers["connect"]`),
  wrapped: it first watches each new socket's upgrade, then runs python-socketio's;
- while the fast path is on, each new Engine.IO socket's `_upgrade_websocket(environ)`: an
  instance attribute that stands for the class's method, to learn the environ of the websocket
  a long-polling connection (browsers' default) upgrades to, and give it the fast path;
- the Engine.IO `message` and `disconnect` handlers, wrapped, so that what a client sends is
  checked before python-socketio keeps or parses it (`_inbound.py`: attachments counted,
  malformed packets answered and logged once);
- the server's `handle_request`, wrapped, so that a request not served on asyncio fails at
  once, saying so.

A broadcast is encoded once into Engine.IO packets (through the server's `packet_class`) and put
straight on each receiver's Engine.IO queue, with no task or coroutine per receiver; that queue
is also where `Limits.max_queued` and `Limits.max_queued_bytes` are enforced (each peer's
`Backlog`): a receiver whose queue is full is disconnected (its socket closed without waiting)
or loses its oldest packets.

The fast path: under uvicorn's websockets-sansio protocol, a broadcast is also framed once as a
websocket text frame, and written straight to each receiver's transport whenever nothing is
pending for that receiver in Engine.IO, its websocket is open, and its transport's buffer is
small. Per-message deflate is negotiated without server context takeover before the websocket
is accepted, so that a broadcast is compressed once for all its receivers with the same window
(`Frames`). Every other receiver, and every other setup (long-polling until the upgrade,
another ASGI server, aiohttp, binary attachments), takes the queue. `_direct.py` says when a
write is safe; `SocketIOTransport.direct_writes` counts the deliveries it made.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

try:
    import socketio
    import socketio.exceptions
except ImportError as exc:
    raise ImportError(
        f"roomcast.adapters.socketio needs python-socketio ({exc.name} is missing): "
        "pip install 'roomcast[socketio]'"
    ) from exc

from .._app import App
from .._backlog import SHED, Backlog
from .._connection import REACHABLE, State, move
from .._exceptions import Reject
from .._message import Outgoing, fold, spread
from .._recovery import Claim, Recovery
from .._transport import Transport
from . import _internals
from ._asgi import BodyLimit as BodyLimit
from ._direct import DirectWriter, Frames
from ._inbound import Inbound

__all__ = ["BodyLimit", "SocketIOTransport", "attach"]


def attach(
    app: App, sio: socketio.AsyncServer, namespace: str = "/", *, recovery: float | None = None
) -> SocketIOTransport:
    """Route every Socket.IO event of `namespace` through `app`; return the transport.

    `recovery`: seconds within which a client whose connection dropped (not a disconnect it
    asked for) and that reconnects gets back its sid, rooms, session and the events it missed,
    as the official socket.io-client (4.6+) asks for (`None`: off). See `docs/recovery.md`.

    Raises `RuntimeError` when the installed python-socketio or python-engineio is not a
    release the adapter is tested with, and `ValueError` when the app already recovers
    connections through another transport."""
    transport = SocketIOTransport(app, sio, namespace)
    if recovery is not None:
        transport._recover(recovery)
    sio.on("connect", transport._on_connect, namespace=namespace)
    sio.on("disconnect", transport._on_disconnect, namespace=namespace)
    _internals.replace_event_handler(sio, namespace, transport._on_event)
    _internals.refuse_off_asyncio(sio)
    transport.inbound.install()
    if transport.fast_path:
        # Long-polling connections (how browsers' clients start by default) that upgrade to a
        # websocket can take the fast path once upgraded: each new Engine.IO socket gets its
        # upgrade watched, before its client can ask for the upgrade.
        _internals.replace_engineio_connect(sio, _UpgradeWatch.watch)
    return transport


class _UpgradeWatch:
    """What is known of one Engine.IO socket's upgrade to a websocket: the environ of the
    websocket request once it starts, and the peers of that socket to tell of it."""

    __slots__ = ("environ", "peers")

    def __init__(self) -> None:
        self.environ: dict[str, Any] | None = None
        self.peers: list[Peer] = []

    @classmethod
    def watch(cls, socket: Any) -> None:
        _internals.watch_upgrade(socket, cls())

    def __call__(self, environ: dict[str, Any]) -> None:
        # Before the websocket is accepted: per-message deflate, if negotiated, compresses
        # each message alone, so that a broadcast's one compressed frame serves every
        # receiver (see `_direct.py`).
        _internals.share_deflate(environ)
        self.environ = environ
        for peer in self.peers:
            peer.upgrade = environ
        self.peers = []


class Encoded(NamedTuple):
    """One event as this transport sends it, built once per broadcast."""

    packets: list[Any]
    """The Engine.IO packets, for receivers reached through their queue."""
    sizes: list[int]
    """The size of each packet, for each receiver's backlog."""
    frames: Frames | None
    """The websocket frames of the one text packet, for receivers written to directly, by how
    each one's connection sends (`DirectWriter.window`); `None` for binary attachments."""


class Peer:
    """A connection as this transport reaches it: its state, its Engine.IO socket, that
    socket's queue and what waits in it (`backlog`), its direct writer while it has one, and
    the environ of its websocket while it is upgrading to one."""

    __slots__ = (
        "backlog",
        "held",
        "pid",
        "queue",
        "queue_length",
        "sid",
        "socket",
        "state",
        "tasks",
        "upgrade",
        "writer",
    )

    def __init__(
        self,
        sid: str,
        socket: Any,
        writer: DirectWriter | None,
        backlog: Backlog,
        pid: str | None = None,
    ) -> None:
        self.sid = sid
        self.pid = pid
        """Its private id, while connections are recovered."""
        self.socket = socket
        self.queue: Any = None
        self.queue_length: Callable[[], int | None] | None = None
        if socket is not None:
            self.queue = _internals.engineio_queue(socket)
            self.queue_length = _internals.queue_length(socket)
        self.writer = writer
        self.backlog = backlog
        self.state = State.CONNECTING
        self.upgrade: dict[str, Any] | None = None
        self.held: list[tuple[list[Any], list[int]]] = []
        """What was sent to it while it was connecting, until the connect reply has gone."""
        self.tasks: set[asyncio.Task[None]] = set()
        """The tasks handling its events (one runs, the others wait their turn)."""


RECOVERABLE = frozenset(
    {
        socketio.AsyncServer.reason.PING_TIMEOUT,
        socketio.AsyncServer.reason.TRANSPORT_CLOSE,
        socketio.AsyncServer.reason.TRANSPORT_ERROR,
    }
)
"""Why a connection closed, when it may be recovered: it dropped, it did not ask to go."""

TOO_MANY_PENDING = {"code": "rate_limited", "message": "Too many events waiting: slow down."}


class SocketIOTransport(Transport):
    """Carries a roomcast app's events over one namespace of a python-socketio server.

    `direct_writes` counts the deliveries written straight to a websocket rather than through
    Engine.IO's queue (the fast path: see the module's docstring); `fast_path` says whether the
    fast path is on, and `fast_path_off_reason` why not.

    Raises `RuntimeError` when the installed python-socketio or python-engineio is not a
    release the adapter is tested with.
    """

    def __init__(self, app: App, sio: socketio.AsyncServer, namespace: str = "/") -> None:
        self._fast_path_off_reason = _internals.check_versions()
        self.app = app
        self.sio = sio
        self.namespace = namespace
        self.direct_writes = 0
        self._handling: set[asyncio.Task[None]] = set()
        self._peers: dict[str, Peer] = {}
        self.inbound = Inbound(sio, app.limits, app.stats, self._reply_error, app.hub.clock)
        """The checks on what clients send, before python-socketio keeps or parses it."""
        self.recovery: Recovery | None = None
        """The app's recovery log and dropped connections, when this transport recovers."""
        self._claims: dict[str, Claim | None] = {}  # by Engine.IO sid, while connecting
        self._pids: dict[str, tuple[str, Claim | None]] = {}  # by sid, while connecting

    @property
    def fast_path(self) -> bool:
        """Whether broadcasts may be written straight to websockets: the installed uvicorn and
        websockets are releases the adapter is tested with."""
        return self._fast_path_off_reason is None

    @property
    def fast_path_off_reason(self) -> str | None:
        """Why the fast path is off (which package, which version, which range tested), or
        `None` when it is on."""
        return self._fast_path_off_reason

    def encode(self, event: str, data: Any, *, offset: str | None = None) -> Encoded:
        args = [event, *spread(data)]
        if offset is not None:  # last, as Socket.IO's own server puts it
            args.append(offset)
        packets, sizes, text = _internals.event_packets(self.sio, self.namespace, args)
        return Encoded(packets, sizes, None if text is None else Frames(text))

    async def send(self, peers: Iterable[Peer], encoded: Any) -> None:
        packets, sizes, frames = encoded
        slow: list[Peer] = []
        direct = dropped = 0
        for peer in peers:
            writer = peer.writer
            if writer is None and peer.upgrade is not None:
                writer = self._upgraded(peer)
            if writer is not None and frames is not None and writer.write(frames[writer.window]):
                direct += 1
                continue
            if peer.state is not State.OPEN:
                if peer.state is State.CONNECTING:  # sent once the connect reply has gone
                    peer.held.append((packets, sizes))
                continue
            drop = self._queue(peer, packets, sizes)
            if drop == SHED:
                slow.append(peer)
            else:
                dropped += drop
        self.direct_writes += direct
        self.app.stats.events_dropped += dropped
        for peer in slow:
            self._shed(peer)

    def _queue(self, peer: Peer, packets: list[Any], sizes: list[int]) -> int:
        """Put `packets` on `peer`'s Engine.IO queue, within its backlog; return how many
        waiting packets were dropped for them, or `SHED`: the peer must be shed."""
        queue_length = peer.queue_length
        waiting = None if queue_length is None else queue_length()
        if waiting is None:  # no Engine.IO socket, or it is closed
            return 0
        queue = peer.queue
        backlog = peer.backlog
        backlog.settle(waiting)  # what Engine.IO's writer took since
        dropped = 0
        for pkt, size in zip(packets, sizes, strict=True):
            drop = backlog.admit(size)
            if drop == SHED:
                return SHED
            if drop:
                dropped += _internals.drop_queued(queue, drop)
            queue.put_nowait(pkt)
        return dropped

    def _release(self, peer: Peer, writer: DirectWriter | None) -> None:
        """After the connect reply: send what the connect hooks sent `peer`, in order, and
        give it its direct writer."""
        held, peer.held = peer.held, []
        if peer.state is not State.OPEN:
            return
        for packets, sizes in held:
            drop = self._queue(peer, packets, sizes)
            if drop == SHED:
                self._shed(peer)
                return
            self.app.stats.events_dropped += drop
        peer.writer = writer

    def _shed(self, peer: Peer) -> None:
        """Disconnect a connection that does not read what it is sent: its queue is emptied,
        an Engine.IO close takes the place of what it missed and, where the adapter holds the
        connection's transport, its TCP socket is closed at once (else the kernel's unsent
        buffer would keep it open until the client reads or goes)."""
        self.app.stats.slow_consumers_disconnected += 1
        peer.state = move(peer.state, State.CLOSING)
        peer.upgrade = None
        _internals.drop_queued(peer.queue, peer.queue.qsize())
        peer.backlog.clear()
        if peer.writer is not None:
            peer.writer.abort()
            peer.writer = None
        task = asyncio.get_running_loop().create_task(
            _internals.close_socket(peer.socket, "slow consumer")
        )
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def ask(
        self, peer: Peer, event: str, data: Any, answer: Callable[[Any], None]
    ) -> Callable[[], None]:
        def acknowledged(*args: Any) -> None:
            answer(fold(args))

        ack_id = _internals.expect_ack(self.sio, peer.sid, acknowledged)
        args = [event, *spread(data)]
        packets, sizes, _ = _internals.event_packets(self.sio, self.namespace, args, ack_id)
        # Through the queue, in order with what the connection was sent before.
        if peer.state is State.CONNECTING:
            peer.held.append((packets, sizes))
        elif peer.state is State.OPEN:
            drop = self._queue(peer, packets, sizes)
            if drop == SHED:
                self._shed(peer)
            else:
                self.app.stats.events_dropped += drop
        return functools.partial(_internals.forget_ack, self.sio, peer.sid, ack_id)

    async def close(self, sid: str) -> None:
        await self.sio.disconnect(sid, namespace=self.namespace)

    # -- connection-state recovery ------------------------------------------------------------

    def _recover(self, window: float) -> None:
        """Recover the connections of this namespace that drop, for `window` seconds."""
        recovery = Recovery(window, self._size_of)
        self.app.hub.recover_with(recovery)
        self.recovery = recovery
        _internals.replace_connect_handler(self.sio, self.namespace, self._connect_packet)
        _internals.replace_pre_connect(self.sio, self._pre_connect)
        _internals.add_to_connect_reply(self.sio, self.namespace, self._private_id)

    def _size_of(self, message: Outgoing) -> int:
        """What a logged event holds: its Engine.IO packets hold the encoded text twice (the
        text, and its encoded form kept for the next receiver), its websocket frame once more,
        and once more at most its compressed frame when receivers compress (smaller, or the
        same frame), and about 1 KiB of objects (measured: benchmarks/recovery.py)."""
        return 4 * int(sum(message.encoded(self).sizes)) + 1024

    async def _connect_packet(
        self, connect: _internals.ConnectHandler, eio_sid: str, namespace: str, data: Any
    ) -> None:
        """A client connects: one that brings a private id and an offset (socket.io-client
        does when it reconnects) claims its dropped connection; they are taken out of what
        the app sees as its auth either way."""
        assert self.recovery is not None
        if isinstance(data, dict) and "pid" in data:
            data = dict(data)
            pid, offset = data.pop("pid"), data.pop("offset", None)
            self._claims[eio_sid] = await self.app.hub.claim(pid, offset)
            data = data or None
        try:
            await connect(eio_sid, namespace, data)
        finally:
            self._claims.pop(eio_sid, None)

    async def _pre_connect(
        self, pre_connect: _internals.PreConnect, eio_sid: str, namespace: str
    ) -> str | None:
        """The sid of a connection: its old one when it recovers, else a new one."""
        claim = self._claims.pop(eio_sid, None) if namespace == self.namespace else None
        if claim is None:
            sid = await pre_connect(eio_sid, namespace)
        else:
            sid = await _internals.pre_connect_with_sid(
                self.sio, pre_connect, eio_sid, namespace, claim.sid
            )
        if sid is not None and namespace == self.namespace:
            assert self.recovery is not None
            pid = self.recovery.new_pid() if claim is None else claim.pid
            self._pids[sid] = (pid, claim if sid == getattr(claim, "sid", None) else None)
        return sid

    def _private_id(self, sid: str) -> dict[str, str]:
        """What the connect reply carries besides the sid: the private id."""
        peer = self._peers.get(sid)
        pid = peer.pid if peer is not None else self._pids.get(sid, (None, None))[0]
        return {} if pid is None else {"pid": pid}

    # -- what python-socketio calls ------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        socket = _internals.engineio_socket(self.sio, sid, self.namespace)
        writer = DirectWriter.of(socket, environ) if self.fast_path else None
        pid, claim = self._pids.pop(sid, (None, None))
        # Until python-socketio has sent the connect reply, what the hooks send is held:
        # no direct writer yet, so that nothing overtakes it.
        peer = Peer(sid, socket, None, Backlog(self.app.limits), pid)
        watch = _internals.upgrade_listener(socket)
        if writer is None and isinstance(watch, _UpgradeWatch):
            watch.peers.append(peer)  # told when the upgrade starts
            peer.upgrade = watch.environ  # or it has already
        # Known before the hooks run, so that a disconnection during them forgets it too.
        self._peers[sid] = peer
        try:
            await self.app.hub.opened(sid, auth, self, environ, peer=peer, claim=claim)
        except BaseException as exc:
            self._forget(sid)
            if isinstance(exc, Reject):
                raise socketio.exceptions.ConnectionRefusedError(exc.reason) from exc
            raise
        if peer.state is State.CONNECTING:
            peer.state = move(peer.state, State.OPEN)
            # python-socketio sends the connect reply as soon as this returns, before the
            # event loop runs anything else: what the hooks sent follows it.
            asyncio.get_running_loop().call_soon(self._release, peer, writer)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        peer = self._peers.get(sid)
        # A connection that dropped may be recovered; not one that was closed on purpose.
        resumable = None
        if peer is not None and peer.state is State.OPEN and reason in RECOVERABLE:
            resumable = peer.pid
        self._forget(sid)
        await self.app.hub.closed(sid, resumable=resumable)

    def _upgraded(self, peer: Peer) -> DirectWriter | None:
        """The direct writer of a connection upgrading to a websocket, once it has."""
        if peer.state is not State.OPEN or not _internals.is_upgraded(peer.socket):
            return None
        environ, peer.upgrade = peer.upgrade, None
        if environ is not None and peer.sid in self._peers:
            peer.writer = DirectWriter.of(peer.socket, environ)
        return peer.writer

    def _forget(self, sid: str) -> None:
        peer = self._peers.pop(sid, None)
        if peer is not None:
            if peer.state in REACHABLE:
                peer.state = move(peer.state, State.CLOSING)
            peer.state = move(peer.state, State.CLOSED)
            peer.writer = peer.upgrade = None
            peer.backlog.clear()
            # Its events' handlers are cancelled, as Phoenix ends a channel's process, but
            # for one that closed its own connection (it finishes, as it would anyway).
            current = asyncio.current_task()
            for task in peer.tasks:
                if task is not current:
                    task.cancel()
            # The socket outlives its connection for a while (python-engineio's ping task
            # holds it for up to a ping interval): what it would keep of the websocket, through
            # the environ of its upgrade, goes now.
            watch = _internals.upgrade_listener(peer.socket)
            if isinstance(watch, _UpgradeWatch):
                watch.environ = None
                watch.peers = []

    async def _on_event(self, eio_sid: str, ack_id: int | None, data: Any) -> None:
        sid = _internals.session_id(self.sio, eio_sid, self.namespace)
        if sid is None:
            return
        if not isinstance(data, list) or not data or not isinstance(data[0], str):
            await self.inbound.malformed(eio_sid, data, "not an event", ack_id)
            return
        peer = self._peers.get(sid)
        if peer is None:
            return
        max_pending = self.app.limits.max_pending
        if max_pending is not None and len(peer.tasks) >= max_pending:
            # What a connection has sent and the app has not handled is bounded: past it,
            # an event is refused before it is kept.
            self.app.stats.rate_limited += 1
            await self._reply_error(eio_sid, self.namespace, ack_id, TOO_MANY_PENDING)
            return
        event, args = data[0], tuple(data[1:])
        ack = None if ack_id is None else _Ack(self, eio_sid, ack_id)
        # Not awaited here: this runs in the connection's read loop, which must go on reading
        # (Engine.IO's pings among others) while a handler runs. Tasks start in the order the
        # events came, and the app's per-connection lock keeps that order.
        task = asyncio.get_running_loop().create_task(
            self.app.hub.received(sid, event, fold(args), ack, args=args)
        )
        peer.tasks.add(task)
        task.add_done_callback(peer.tasks.discard)

    async def _reply_error(
        self, eio_sid: str, namespace: str, ack_id: int | None, error: dict[str, Any]
    ) -> None:
        """Tell a client that a packet of its failed: in the acknowledgement it asked for, or
        else as the event `"error"` (when it is connected to this transport's namespace)."""
        if namespace != self.namespace:
            return
        if ack_id is not None:
            await _internals.send_ack(self.sio, eio_sid, namespace, ack_id, [{"error": error}])
            return
        sid = _internals.session_id(self.sio, eio_sid, namespace)
        if sid is not None:
            await self.app.emit(sid, "error", {**error, "event": None})


class _Ack:
    """Sends the acknowledgement of one event, as soon as the handler responds."""

    __slots__ = ("_ack_id", "_eio_sid", "_transport")

    def __init__(self, transport: SocketIOTransport, eio_sid: str, ack_id: int) -> None:
        self._transport = transport
        self._eio_sid = eio_sid
        self._ack_id = ack_id

    async def __call__(self, data: Any) -> None:
        transport = self._transport
        await _internals.send_ack(
            transport.sio,
            self._eio_sid,
            transport.namespace,
            self._ack_id,
            spread(data),
        )

"""python-socketio as a roomcast transport: `attach(app, sio)`.

```python
sio = socketio.AsyncServer(async_mode="asgi")
attach(app, sio)
asgi_app = socketio.ASGIApp(sio)
```

Every event of the namespace goes through the app. What python-socketio's public API cannot do
is done by reading a few of its internals, and of python-engineio's, which is why the
`socketio` extra pins the versions this module is tested against (`tests/test_adapter_socketio.py`
checks each reliance); nothing of theirs is patched:

- to know whether the client asked for an acknowledgement (so an error goes into the ack, or
  else as the event `"error"`) and to send the ack as soon as the handler responds, the
  server's `_handle_event(eio_sid, namespace, id, data)` is wrapped for this namespace, and
  acks are sent with `_send_packet`;
- a broadcast is encoded once into Engine.IO packets (`packet_class`) and put straight on each
  receiver's Engine.IO queue (`eio.sockets[eio_sid].queue`), with no task or coroutine per
  receiver; that queue is also where `Limits.max_queued` is enforced: a receiver whose queue is
  full is disconnected (`socket.close(wait=False)`) or loses its oldest packets;
- the fast path: under uvicorn's websockets-sansio protocol, a broadcast is also framed once as
  a websocket text frame, and written straight to each receiver's transport whenever nothing
  is pending for that receiver in Engine.IO (its queue is empty and its writer task waits on
  it), its websocket is open, negotiated no compression, and its transport's buffer is small.
  A connection that starts on long-polling (browsers' default) joins the fast path once it has
  upgraded to a websocket: the Engine.IO `connect` handler is wrapped so that each new socket's
  `_upgrade_websocket(environ)` is wrapped in turn, to learn the websocket's environ. Every
  other receiver, and every other setup (long-polling, another ASGI server, aiohttp,
  per-message deflate, binary attachments), takes the queue. `_direct.py` says what it relies
  on; `SocketIOTransport.direct_writes` counts the deliveries it made.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NamedTuple

import engineio.packet
import socketio
import socketio.exceptions
import socketio.packet

from .._app import App
from .._backlog import SHED, Backlog
from .._connection import REACHABLE, State, move
from .._exceptions import Reject
from .._transport import Transport
from ._direct import DirectWriter, text_frame

__all__ = ["SocketIOTransport", "attach"]

_EventHandler = Callable[[str, str | None, int | None, list[Any]], Awaitable[None]]


def attach(app: App, sio: socketio.AsyncServer, namespace: str = "/") -> SocketIOTransport:
    """Route every Socket.IO event of `namespace` through `app`; return the transport."""
    transport = SocketIOTransport(app, sio, namespace)
    sio.on("connect", transport._on_connect, namespace=namespace)
    sio.on("disconnect", transport._on_disconnect, namespace=namespace)
    next_handler: _EventHandler = sio._handle_event

    async def handle_event(
        eio_sid: str, event_namespace: str | None, ack_id: int | None, data: list[Any]
    ) -> None:
        if (event_namespace or "/") != namespace:
            await next_handler(eio_sid, event_namespace, ack_id, data)
        else:
            await transport._on_event(eio_sid, ack_id, data)

    sio._handle_event = handle_event

    # Long-polling connections (how browsers' clients start by default) that upgrade to a
    # websocket can take the fast path once upgraded: each new Engine.IO socket gets its
    # upgrade watched, before its client can ask for the upgrade.
    next_eio_connect = sio.eio.handlers["connect"]

    async def handle_eio_connect(eio_sid: str, environ: dict[str, Any], *args: Any) -> Any:
        _UpgradeWatch.watch(sio.eio.sockets.get(eio_sid))
        return await next_eio_connect(eio_sid, environ, *args)

    sio.eio.on("connect", handle_eio_connect)
    return transport


class _UpgradeWatch:
    """Stands for an Engine.IO socket's `_upgrade_websocket(environ)` (looked up on the socket
    for each websocket request) to learn the environ of the websocket it upgrades to, and tell
    the peers of that socket."""

    __slots__ = ("environ", "peers", "upgrade")

    def __init__(self, upgrade: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        self.upgrade = upgrade
        self.environ: dict[str, Any] | None = None
        self.peers: list[Peer] = []

    @classmethod
    def watch(cls, socket: Any) -> None:
        if socket is None or socket.upgraded or isinstance(socket.__dict__.get(_UPGRADE), cls):
            return
        setattr(socket, _UPGRADE, cls(getattr(socket, _UPGRADE)))

    async def __call__(self, environ: dict[str, Any]) -> Any:
        self.environ = environ
        for peer in self.peers:
            peer.upgrade = environ
        self.peers = []
        return await self.upgrade(environ)


_UPGRADE = "_upgrade_websocket"


class Encoded(NamedTuple):
    """One event as this transport sends it, built once per broadcast."""

    packets: list[engineio.packet.Packet]
    """The Engine.IO packets, for receivers reached through their queue."""
    sizes: list[int]
    """The size of each packet, for each receiver's backlog."""
    frame: bytes | None
    """The websocket frame of the one text packet, for receivers written to directly; `None`
    for binary attachments."""


class Peer:
    """A connection as this transport reaches it: its state, its Engine.IO socket and what
    waits in its queue (`backlog`), its direct writer while it has one, and the environ of
    its websocket while it is upgrading to one."""

    __slots__ = ("backlog", "sid", "socket", "state", "upgrade", "writer")

    def __init__(
        self, sid: str, socket: Any, writer: DirectWriter | None, backlog: Backlog
    ) -> None:
        self.sid = sid
        self.socket = socket
        self.writer = writer
        self.backlog = backlog
        self.state = State.CONNECTING
        self.upgrade: dict[str, Any] | None = None


class SocketIOTransport(Transport):
    """Carries a roomcast app's events over one namespace of a python-socketio server.

    `direct_writes` counts the deliveries written straight to a websocket rather than through
    Engine.IO's queue (the fast path: see the module's docstring).
    """

    def __init__(self, app: App, sio: socketio.AsyncServer, namespace: str = "/") -> None:
        self.app = app
        self.sio = sio
        self.namespace = namespace
        self.direct_writes = 0
        self._handling: set[asyncio.Task[None]] = set()
        self._peers: dict[str, Peer] = {}

    def encode(self, event: str, data: Any) -> Encoded:
        args = [event] if data is None else [event, data]
        pkt = self.sio.packet_class(socketio.packet.EVENT, namespace=self.namespace, data=args)
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        packets = [engineio.packet.Packet(engineio.packet.MESSAGE, part) for part in parts]
        sizes = [len(part) for part in parts]
        frame = None
        if len(packets) == 1 and not packets[0].binary:
            frame = text_frame(packets[0].encode())
        return Encoded(packets, sizes, frame)

    async def send(self, peers: Iterable[Peer], encoded: Any) -> None:
        packets, sizes, frame = encoded
        slow: list[Peer] = []
        direct = dropped = 0
        for peer in peers:
            writer = peer.writer
            if writer is None and peer.upgrade is not None:
                writer = self._upgraded(peer)
            if writer is not None and frame is not None and writer.write(frame):
                direct += 1
                continue
            socket = peer.socket
            if socket is None or socket.closed or peer.state not in REACHABLE:
                continue
            queue = socket.queue
            backlog = peer.backlog
            backlog.settle(queue.qsize())  # what Engine.IO's writer took since
            for pkt, size in zip(packets, sizes, strict=True):
                drop = backlog.admit(size)
                if drop == SHED:
                    slow.append(peer)
                    break
                if drop:
                    dropped += _drop(queue, drop)
                queue.put_nowait(pkt)
        self.direct_writes += direct
        self.app.stats.events_dropped += dropped
        for peer in slow:
            self._shed(peer)

    def _shed(self, peer: Peer) -> None:
        """Disconnect a connection that does not read what it is sent: its queue is emptied,
        an Engine.IO close takes the place of what it missed and, where the adapter holds the
        connection's transport, its TCP socket is closed at once (else the kernel's unsent
        buffer would keep it open until the client reads or goes)."""
        self.app.stats.slow_consumers_disconnected += 1
        peer.state = move(peer.state, State.CLOSING)
        peer.upgrade = None
        socket = peer.socket
        _drop(socket.queue, socket.queue.qsize())
        peer.backlog.clear()
        if peer.writer is not None:
            peer.writer.abort()
            peer.writer = None
        task = asyncio.get_running_loop().create_task(
            socket.close(wait=False, abort=False, reason="slow consumer")
        )
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def close(self, sid: str) -> None:
        await self.sio.disconnect(sid, namespace=self.namespace)

    # -- what python-socketio calls ------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        socket = self.sio.eio.sockets.get(self.sio.manager.eio_sid_from_sid(sid, self.namespace))
        peer = Peer(sid, socket, DirectWriter.of(socket, environ), Backlog(self.app.limits))
        watch = getattr(socket, "__dict__", {}).get(_UPGRADE)
        if peer.writer is None and isinstance(watch, _UpgradeWatch):
            watch.peers.append(peer)  # told when the upgrade starts
            peer.upgrade = watch.environ  # or it has already
        # Known before the hooks run, so that a disconnection during them forgets it too.
        self._peers[sid] = peer
        try:
            await self.app.hub.opened(sid, auth, self, environ, peer=peer)
        except BaseException as exc:
            self._forget(sid)
            if isinstance(exc, Reject):
                raise socketio.exceptions.ConnectionRefusedError(exc.reason) from exc
            raise
        if peer.state is State.CONNECTING:
            peer.state = move(peer.state, State.OPEN)

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._forget(sid)
        await self.app.hub.closed(sid)

    def _upgraded(self, peer: Peer) -> DirectWriter | None:
        """The direct writer of a connection upgrading to a websocket, once it has."""
        if not peer.socket.upgraded:
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

    async def _on_event(self, eio_sid: str, ack_id: int | None, data: list[Any]) -> None:
        sid = self.sio.manager.sid_from_eio_sid(eio_sid, self.namespace)
        if sid is None or not data:
            return
        event, args = data[0], data[1:]
        payload = None if not args else args[0] if len(args) == 1 else list(args)
        ack = None if ack_id is None else _Ack(self, eio_sid, ack_id)
        # Not awaited here: this runs in the connection's read loop, which must go on reading
        # (Engine.IO's pings among others) while a handler runs. Tasks start in the order the
        # events came, and the app's per-connection lock keeps that order.
        task = asyncio.get_running_loop().create_task(
            self.app.hub.received(sid, event, payload, ack)
        )
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)


def _drop(queue: asyncio.Queue[Any], count: int) -> int:
    """Take up to `count` packets off the head of an Engine.IO socket's queue; return how many.
    The marker that closes the socket (`None`) stays."""
    dropped = 0
    while dropped < count and not queue.empty():
        pkt = queue.get_nowait()
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        dropped += 1
    return dropped


class _Ack:
    """Sends the acknowledgement of one event, as soon as the handler responds."""

    __slots__ = ("_ack_id", "_eio_sid", "_transport")

    def __init__(self, transport: SocketIOTransport, eio_sid: str, ack_id: int) -> None:
        self._transport = transport
        self._eio_sid = eio_sid
        self._ack_id = ack_id

    async def __call__(self, data: Any) -> None:
        sio = self._transport.sio
        pkt = sio.packet_class(
            socketio.packet.ACK,
            namespace=self._transport.namespace,
            id=self._ack_id,
            data=[] if data is None else [data],
        )
        await sio._send_packet(self._eio_sid, pkt)

"""python-socketio as a roomcast transport: `attach(app, sio)`.

```python
sio = socketio.AsyncServer(async_mode="asgi")
attach(app, sio)
asgi_app = socketio.ASGIApp(sio)
```

Every event of the namespace goes through the app. Two things python-socketio's public API
cannot do are done by relying on a few of its internals, which is why the `socketio` extra pins
the python-socketio versions this module is tested against (`tests/test_adapter_socketio.py`
checks each reliance):

- to know whether the client asked for an acknowledgement (so an error goes into the ack, or
  else as the event `"error"`) and to send the ack as soon as the handler responds, the
  server's `_handle_event(eio_sid, namespace, id, data)` is wrapped for this namespace, and
  acks are sent with `_send_packet`;
- a broadcast is encoded once into Engine.IO packets (`packet_class`) and put straight on each
  receiver's Engine.IO queue (`eio.sockets[eio_sid].queue`), with no task or coroutine per
  receiver; that queue is also where `Limits.max_queued` is enforced: a receiver whose queue is
  full is disconnected (`socket.close(wait=False)`) or loses its oldest packets.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import engineio.packet
import socketio
import socketio.exceptions
import socketio.packet

from .._app import App
from .._exceptions import Reject
from .._transport import Transport

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
    return transport


class SocketIOTransport(Transport):
    """Carries a roomcast app's events over one namespace of a python-socketio server."""

    def __init__(self, app: App, sio: socketio.AsyncServer, namespace: str = "/") -> None:
        self.app = app
        self.sio = sio
        self.namespace = namespace
        self._handling: set[asyncio.Task[None]] = set()

    def encode(self, event: str, data: Any) -> list[engineio.packet.Packet]:
        args = [event] if data is None else [event, data]
        pkt = self.sio.packet_class(socketio.packet.EVENT, namespace=self.namespace, data=args)
        encoded = pkt.encode()
        parts = encoded if isinstance(encoded, list) else [encoded]
        return [engineio.packet.Packet(engineio.packet.MESSAGE, part) for part in parts]

    async def send(self, sids: Iterable[str], encoded: Any) -> None:
        eio_sid_of = self.sio.manager.eio_sid_from_sid
        sockets = self.sio.eio.sockets
        namespace = self.namespace
        limits = self.app.limits
        room_left = math.inf if limits.max_queued is None else limits.max_queued - len(encoded)
        drop_oldest = limits.slow_consumer == "drop_oldest"
        slow: list[Any] = []
        for sid in sids:
            socket = sockets.get(eio_sid_of(sid, namespace))
            if socket is None or socket.closed:
                continue
            queue = socket.queue
            if queue.qsize() > room_left:
                if not drop_oldest:
                    slow.append(socket)
                    continue
                self.app.stats.events_dropped += _drop(queue, len(encoded))
            for pkt in encoded:
                queue.put_nowait(pkt)
        for socket in slow:
            self._shed(socket)

    def _shed(self, socket: Any) -> None:
        """Disconnect a connection that does not read what it is sent: its queue is emptied
        and an Engine.IO close takes the place of what it missed."""
        self.app.stats.slow_consumers_disconnected += 1
        _drop(socket.queue, socket.queue.qsize())
        task = asyncio.get_running_loop().create_task(
            socket.close(wait=False, abort=False, reason="slow consumer")
        )
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def close(self, sid: str) -> None:
        await self.sio.disconnect(sid, namespace=self.namespace)

    # -- what python-socketio calls ------------------------------------------------------------

    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        try:
            await self.app.handle_connect(sid, auth, self, environ)
        except Reject as exc:
            raise socketio.exceptions.ConnectionRefusedError(exc.reason) from exc

    async def _on_disconnect(self, sid: str, reason: Any = None) -> None:
        await self.app.handle_disconnect(sid)

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
            self.app.handle_event(sid, event, payload, ack)
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

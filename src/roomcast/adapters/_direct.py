"""Direct websocket writes: a broadcast framed once, written straight to each receiver.

Engine.IO sends every packet through a queue and a writer task per socket, and the writer hands
each packet to the ASGI server's `send`. Per packet and receiver that is a task wake-up (on
Python 3.11 also a task and a timer, for `asyncio.wait_for`) and an ASGI round trip: most of
the server's time when one broadcast reaches a thousand receivers. When uvicorn's
websockets-sansio protocol serves a connection, the adapter can instead build the websocket
frame of a broadcast once (`text_frame`) and write those bytes to each receiver's asyncio
transport, as uvicorn itself would write them.

Such a write must never overtake a packet Engine.IO still holds for that receiver (an
acknowledgement, an event sent through the queue, a ping, the close), so `DirectWriter.write`
writes only when all of these hold, and otherwise leaves the packet to the queue, where
`Limits.max_queued` and the slow-consumer policy apply:

- the socket's queue is empty and its writer task is parked on it (the queue's `_getters`
  holds a pending future). The writer then holds no packet it took from the queue, and all it
  sent is already in the transport: uvicorn's `send` writes before it returns, unless the
  transport is paused, and then the writer is still in `send`, not parked;
- the Engine.IO socket is not closing, the websocket is open (`conn.state`) and the transport
  is not closing;
- the transport holds fewer than `MAX_BUFFERED` bytes not yet sent: a receiver that reads
  slowly goes back to the queue.

What cannot change is checked once, when the connection opens as a websocket or has upgraded
to one from long-polling (`DirectWriter.of`, given the environ of the websocket request): it
is a websocket served through python-engineio's ASGI driver, whose environ carries the ASGI
`send`; that `send` is a method of uvicorn's
`WebSocketsSansIOProtocol` (found in `sys.modules`: this module never imports uvicorn), which
holds a websockets `Protocol` (`conn`) and an asyncio transport (`transport`); and the
connection negotiated no extension, so that every receiver's frame is the same bytes
(per-message deflate compresses each connection's frames differently). Anything else, such as
another ASGI server or `ws=` implementation of uvicorn, python-engineio's aiohttp mode, or an
internal that changed, gets no writer: its connections take the queue as before.

Tested range: python-engineio 4.11 to 4.15 (pinned by the `socketio` extra; run with 4.11 and
4.15.1), uvicorn 0.35 to 0.54 (websockets-sansio came in 0.35, and pauses writing to a slow
reader from 0.53; run with 0.35, 0.45, 0.52 and 0.54), websockets 13.1 and 17.4, CPython 3.11
(from 3.12, `asyncio.wait_for` runs `queue.get()` in the writer task itself; the waiting
getter is the same signal). `tests/test_adapter_socketio.py` checks each internal relied on,
`tests/test_adapter_direct.py` the order and when the fast path is taken.
"""

from __future__ import annotations

import asyncio
import collections
import struct
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_BUFFERED", "DirectWriter", "text_frame"]

MAX_BUFFERED = 64 * 1024
"""Bytes a transport may hold unsent before broadcasts to it take the queue again."""

UVICORN_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"
"""The module of uvicorn's `WebSocketsSansIOProtocol` (`ws="websockets-sansio"`)."""


def text_frame(text: str) -> bytes:
    """`text` as one final, unmasked websocket text frame (RFC 6455, 5.2): what a server
    sends for it when no extension was negotiated."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x81, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, size)
    else:
        header = struct.pack("!BBQ", 0x81, 127, size)
    return header + payload


class DirectWriter:
    """Writes whole websocket frames to one connection, when that cannot reorder anything."""

    __slots__ = ("_conn", "_open", "_queue", "_socket", "_transport")

    def __init__(self, socket: Any, conn: Any, transport: Any, open_state: Any) -> None:
        self._socket = socket
        self._queue: asyncio.Queue[Any] = socket.queue
        self._conn = conn
        self._transport = transport
        self._open = open_state

    @classmethod
    def of(cls, socket: Any, environ: Mapping[str, Any]) -> DirectWriter | None:
        """The writer of the Engine.IO `socket` that opened with `environ`, or `None` when this
        module does not know the connection to be safe to write to."""
        protocol = _uvicorn_sansio_protocol(environ)
        if protocol is None:
            return None
        # Imported by uvicorn's module above, so present whenever it is.
        from websockets.protocol import Protocol, State

        conn = getattr(protocol, "conn", None)
        transport = getattr(protocol, "transport", None)
        queue = getattr(socket, "queue", None)
        if (
            not isinstance(conn, Protocol)
            or conn.extensions
            or not all(
                callable(getattr(transport, name, None))
                for name in ("write", "is_closing", "get_write_buffer_size")
            )
            or not isinstance(queue, asyncio.Queue)
            or not isinstance(getattr(queue, "_getters", None), collections.deque)
            or getattr(socket, "upgraded", None) is not True
        ):
            return None
        return cls(socket, conn, transport, State.OPEN)

    def abort(self) -> None:
        """Close the connection's TCP socket at once, dropping what it holds unsent: for a
        reader so slow that it is shed, whose unsent data would otherwise keep the socket."""
        abort = getattr(self._transport, "abort", None)
        if callable(abort):
            abort()

    def write(self, frame: bytes) -> bool:
        """Write `frame` now and return True, or return False: it must take the queue."""
        getters = self._queue._getters  # type: ignore[attr-defined]
        transport = self._transport
        if (
            getters
            and not getters[-1].done()
            and self._queue.empty()
            and not self._socket.closing
            and self._conn.state is self._open
            and not transport.is_closing()
            and transport.get_write_buffer_size() < MAX_BUFFERED
        ):
            transport.write(frame)
            return True
        return False


def _uvicorn_sansio_protocol(environ: Mapping[str, Any]) -> Any:
    """The uvicorn websockets-sansio protocol that serves the websocket request of `environ`
    (python-engineio's ASGI environ), or `None`."""
    scope = environ.get("asgi.scope")
    if not isinstance(scope, Mapping) or scope.get("type") != "websocket":
        return None
    protocol_class = getattr(sys.modules.get(UVICORN_SANSIO), "WebSocketsSansIOProtocol", None)
    protocol = getattr(environ.get("asgi.send"), "__self__", None)
    if not isinstance(protocol_class, type) or not isinstance(protocol, protocol_class):
        return None
    return protocol

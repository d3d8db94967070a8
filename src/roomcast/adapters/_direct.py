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
is a websocket served through python-engineio's ASGI driver, by uvicorn's
`WebSocketsSansIOProtocol` (this module never imports uvicorn), which holds a websockets
`Protocol` and an asyncio transport; the Engine.IO socket's queue is an `asyncio.Queue`; and the
connection negotiated no extension, so that every receiver's frame is the same bytes
(per-message deflate compresses each connection's frames differently). Anything else, such as
another ASGI server or `ws=` implementation of uvicorn, python-engineio's aiohttp mode, or an
internal that changed, gets no writer: its connections take the queue as before.

What this relies on of python-engineio, uvicorn, websockets and asyncio is reached through
`_internals.py`: `uvicorn_websocket` (the environ's `asgi.scope` and `asgi.send`, uvicorn's
protocol, its `conn` and `transport`), `websocket_extensions`, `engineio_queue`, `is_upgraded`
and `engineio_idle`, which hands each writer, once, the function that checks Engine.IO's side
of the conditions above (the queue's `_getters` and `_queue`, the socket's `closing`), so that
a write makes no more calls than it would inline. This module replaces nothing: what the fast path
replaces (the Engine.IO `connect` handler, and each new socket's `_upgrade_websocket`, to learn
the environ of the websocket a long-polling connection upgrades to) is `socketio.py`'s, through
`_internals.py` too. The releases tested are `_internals.TESTED`; outside them the adapter
makes no writer at all (the fast path is off, and a warning says why). On CPython 3.11,
`asyncio.wait_for` runs `queue.get()` in a task of its own, and from 3.12 in the writer task
itself: the waiting getter is the same signal. `tests/test_adapter_socketio.py` checks each
internal relied on, `tests/test_adapter_direct.py` the order and when the fast path is taken.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable, Mapping
from typing import Any

from . import _internals

__all__ = ["MAX_BUFFERED", "DirectWriter", "text_frame"]

MAX_BUFFERED = 64 * 1024
"""Bytes a transport may hold unsent before broadcasts to it take the queue again."""


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

    __slots__ = ("_transport", "write")

    def __init__(self, write: Callable[[bytes], bool], transport: Any) -> None:
        self.write = write
        """`write(frame)`: write `frame` now and return True, or return False: it must take
        the queue (made once per connection by `_internals.direct_write`)."""
        self._transport = transport

    @classmethod
    def of(cls, socket: Any, environ: Mapping[str, Any]) -> DirectWriter | None:
        """The writer of the Engine.IO `socket` that opened with `environ`, or `None` when this
        module does not know the connection to be safe to write to."""
        if socket is None:
            return None
        websocket = _internals.uvicorn_websocket(environ)
        if websocket is None:
            return None
        conn, transport = websocket
        # Imported by uvicorn's module, so present whenever a websocket was found.
        from websockets.protocol import State

        if (
            _internals.websocket_extensions(conn)
            or not isinstance(_internals.engineio_queue(socket), asyncio.Queue)
            or not _internals.is_upgraded(socket)
        ):
            return None
        write = _internals.direct_write(socket, conn, transport, State.OPEN, MAX_BUFFERED)
        if write is None:
            return None
        return cls(write, transport)

    def abort(self) -> None:
        """Close the connection's TCP socket at once, dropping what it holds unsent: for a
        reader so slow that it is shed, whose unsent data would otherwise keep the socket."""
        abort = getattr(self._transport, "abort", None)
        if callable(abort):
            abort()

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

Per-message deflate (RFC 7692), which uvicorn offers by default and browsers accept, would
make each connection's frames different: websockets compresses each message with what that
connection was sent before (context takeover). Before a websocket is accepted (python-engineio
accepts it in `_upgrade_websocket`, whose call `socketio.py` watches), the adapter has it
negotiated again with `server_no_context_takeover`, which a server may add whether or not the
client asked (`_internals.share_deflate`): then every message, compressed by websockets or
here, is compressed alone, and the frames of a broadcast depend only on the window the
connection negotiated. `Frames` holds them: the plain frame (`text_frame`), and per window
the compressed one (`deflate_frame`), made on first need, so that a broadcast is compressed
once for all its receivers with that window (uvicorn's 12 bits, unless a client asks for
less), or, when compressing would not make it smaller, the plain frame, which the extension
allows. Without context takeover the server also keeps no compressor per connection.

What cannot change is checked once, when the connection opens as a websocket or has upgraded
to one from long-polling (`DirectWriter.of`, given the environ of the websocket request): it
is a websocket served through python-engineio's ASGI driver, by uvicorn's
`WebSocketsSansIOProtocol` (this module never imports uvicorn), which holds a websockets
`Protocol` and an asyncio transport; the Engine.IO socket's queue is an `asyncio.Queue`; and the
connection negotiated no extension, or only per-message deflate without server context
takeover (`_internals.shared_window`: the writer's `window`). Anything else, such as another
ASGI server or `ws=` implementation of uvicorn, python-engineio's aiohttp mode, or an internal
that changed, gets no writer: its connections take the queue as before, and the first such
websocket says why on the `roomcast` logger (once per reason and process).

What this relies on of python-engineio, uvicorn, websockets and asyncio is reached through
`_internals.py`: `uvicorn_websocket` (the environ's `asgi.scope` and `asgi.send`, uvicorn's
protocol, its `conn` and `transport`), `shared_window`, `websocket_extensions` and
`websocket_server` (for the message), `engineio_queue`, `is_upgraded` and `engineio_idle`,
which hands each writer, once, the function that checks Engine.IO's side of the conditions
above (the queue's `_getters` and `_queue`, the socket's `closing`), so that a write makes no
more calls than it would inline. This module replaces nothing: what the fast path replaces (the
Engine.IO `connect` handler, each new socket's `_upgrade_websocket`, to learn the environ of
its websocket request, and that websocket's negotiation) is `socketio.py`'s, through
`_internals.py` too. The releases tested are `_internals.TESTED`; outside them the adapter
makes no writer at all (the fast path is off, and a warning says why). On CPython 3.11,
`asyncio.wait_for` runs `queue.get()` in a task of its own, and from 3.12 in the writer task
itself: the waiting getter is the same signal. `tests/test_adapter_socketio.py` checks each
internal relied on, `tests/test_adapter_direct.py` the order, when the fast path is taken, and
the compressed frames.
"""

from __future__ import annotations

import asyncio
import struct
import zlib
from collections.abc import Callable, Mapping
from typing import Any

from . import _internals

__all__ = ["MAX_BUFFERED", "DirectWriter", "Frames", "deflate_frame", "text_frame"]

MAX_BUFFERED = 64 * 1024
"""Bytes a transport may hold unsent before broadcasts to it take the queue again."""

_TEXT, _DEFLATED_TEXT = 0x81, 0xC1  # FIN and the text opcode; with RSV1: compressed (RFC 7692)


def _frame(first: int, payload: bytes) -> bytes:
    """One final, unmasked websocket frame of `payload` (RFC 6455, 5.2), whose first byte is
    `first`."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def text_frame(text: str) -> bytes:
    """`text` as one final, unmasked websocket text frame (RFC 6455, 5.2): what a server
    sends for it when no extension was negotiated."""
    return _frame(_TEXT, text.encode())


def deflate_frame(payload: bytes | memoryview, bits: int) -> bytes | None:
    """The UTF-8 text `payload` as one frame for a connection that negotiated per-message
    deflate without server context takeover, within a window of `bits` (RFC 7692): compressed
    alone (raw deflate, the final empty block's `00 00 ff ff` removed), with RSV1 set. `None`
    when compressing does not make it smaller: the plain frame then serves, which that
    extension allows (RSV1 unset: not compressed)."""
    compressor = zlib.compressobj(wbits=-bits)
    data = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
    if len(data) - 4 >= len(payload):  # a memoryview of bytes: its length is in bytes
        return None
    return _frame(_DEFLATED_TEXT, data[:-4])


class Frames(dict[int, bytes]):
    """The websocket frames of one text packet, by how each receiver's connection sends
    (`DirectWriter.window`): `0`, plain; window bits, per-message deflate without server
    context takeover, compressed on first need and kept, so that a broadcast is compressed
    once for all its receivers with that window."""

    __slots__ = ("_header",)

    def __init__(self, text: str) -> None:
        payload = text.encode()
        plain = _frame(_TEXT, payload)
        super().__init__({0: plain})
        self._header = len(plain) - len(payload)  # the payload is not kept twice

    def __missing__(self, bits: int) -> bytes:
        plain = self[0]
        frame = self[bits] = deflate_frame(memoryview(plain)[self._header :], bits) or plain
        return frame


class DirectWriter:
    """Writes whole websocket frames to one connection, when that cannot reorder anything."""

    __slots__ = ("_transport", "window", "write")

    def __init__(self, write: Callable[[bytes], bool], transport: Any, window: int = 0) -> None:
        self.write = write
        """`write(frame)`: write `frame` now and return True, or return False: it must take
        the queue (made once per connection by `_internals.direct_write`)."""
        self.window = window
        """Which of a packet's `Frames` this connection takes: 0 (plain) or the window bits
        of its per-message deflate."""
        self._transport = transport

    @classmethod
    def of(cls, socket: Any, environ: Mapping[str, Any]) -> DirectWriter | None:
        """The writer of the Engine.IO `socket` that opened with `environ`, or `None` when this
        module does not know the connection to be safe to write to. A websocket that cannot
        have one for a reason of the server's setup (not of the moment) says why, once per
        reason, on the `roomcast` logger."""
        if (
            socket is None
            or not _internals.is_upgraded(socket)
            or str(environ.get("HTTP_UPGRADE", "")).lower() != "websocket"
        ):
            return None  # long-polling: maybe once it upgrades (with that request's environ)
        found = cls._make(socket, environ)
        if isinstance(found, str):
            _internals.warn_once(
                "The Socket.IO fast path (direct websocket writes) is off for websockets where "
                "%s. Broadcasts to them go through Engine.IO's queue.",
                found,
            )
            return None
        return found

    @classmethod
    def _make(cls, socket: Any, environ: Mapping[str, Any]) -> DirectWriter | str:
        """The writer, or why the connection can have none."""
        websocket = _internals.uvicorn_websocket(environ)
        if websocket is None:
            return (
                f"{_internals.websocket_server(environ)} serves them, not uvicorn's "
                "websockets-sansio protocol (uvicorn ws='websockets-sansio', or ws='auto' "
                "with websockets installed)"
            )
        conn, transport = websocket
        window = _internals.shared_window(conn)
        if window is None:
            return (
                f"the extensions negotiated are {_internals.websocket_extensions(conn)}, "
                "which compress each connection's messages its own way"
            )
        # Imported by uvicorn's module, so present whenever a websocket was found.
        from websockets.protocol import State

        if not isinstance(_internals.engineio_queue(socket), asyncio.Queue):
            return "python-engineio's socket queue is not an asyncio.Queue"
        write = _internals.direct_write(socket, conn, transport, State.OPEN, MAX_BUFFERED)
        if write is None:
            return "python-engineio's socket queue is not as known here"
        return cls(write, transport, window)

    def abort(self) -> None:
        """Close the connection's TCP socket at once, dropping what it holds unsent: for a
        reader so slow that it is shed, whose unsent data would otherwise keep the socket."""
        abort = getattr(self._transport, "abort", None)
        if callable(abort):
            abort()

"""Every internal of another library that the Socket.IO adapter relies on, in one place.

`socketio.py`, `_direct.py` and `_inbound.py` reach python-socketio, python-engineio, uvicorn,
websockets and asyncio through the public APIs of those libraries and through the functions
below, nothing else. Each function's docstring says what it reads, calls, wraps or replaces;
`tests/test_adapter_socketio.py` has a canary per function, which fails when what it relies on
disappears or changes shape.

What is replaced, all on the objects `attach` is given or creates, never on a class or a module:

- `sio._handle_event`, an instance attribute set over python-socketio's method
  (`replace_event_handler`);
- the Engine.IO `connect` handler, `sio.eio.handlers["connect"]`, wrapped
  (`replace_engineio_connect`), only while the fast path is on;
- `_upgrade_websocket` of each new Engine.IO socket, an instance attribute that stands for the
  class's method (`watch_upgrade`), only while the fast path is on;
- under uvicorn's websockets-sansio protocol, before a websocket is accepted, that connection's
  negotiation of per-message deflate: its websockets `conn.available_extensions` and uvicorn's
  `response` (`share_deflate`), only while the fast path is on;
- the Engine.IO `message` and `disconnect` handlers, `sio.eio.handlers[...]`, wrapped
  (`wrap_engineio_handler`), so that what a client sends is checked before python-socketio
  keeps or parses it (`_inbound.py`);
- `sio.handle_request`, an instance attribute over python-socketio's public method that first
  refuses a request not served on asyncio (`refuse_off_asyncio`);
- while connections are recovered (`attach(recovery=...)`): `sio._handle_connect`
  (`replace_connect_handler`), `sio.manager.pre_connect` (`replace_pre_connect`), with
  `sio.eio.generate_id` for the time of one call (`pre_connect_with_sid`), and
  `sio._send_packet` (`add_to_connect_reply`), all instance attributes.

Internals change without notice, so the adapter runs only with the releases it is tested with:
`check_versions()`, called when a transport is made (`attach`), raises `RuntimeError` when
python-socketio or python-engineio is outside `TESTED`, and turns the fast path off, with one
warning on the `roomcast` logger, when uvicorn or websockets is.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from importlib import metadata
from typing import Any

import engineio.packet
import socketio.packet

__all__ = [
    "FAST_PATH",
    "REQUIRED",
    "TESTED",
    "UVICORN_SANSIO",
    "add_to_connect_reply",
    "check_versions",
    "close_socket",
    "direct_write",
    "drop_queued",
    "end_writer",
    "engineio_idle",
    "engineio_queue",
    "engineio_socket",
    "engineio_socket_of",
    "event_packets",
    "expect_ack",
    "forget_ack",
    "forget_binary",
    "installed_version",
    "is_upgraded",
    "pending_binary",
    "pre_connect_with_sid",
    "queue_length",
    "refuse_off_asyncio",
    "replace_connect_handler",
    "replace_engineio_connect",
    "replace_event_handler",
    "replace_pre_connect",
    "send_ack",
    "session_id",
    "share_deflate",
    "shared_window",
    "tested_range",
    "upgrade_listener",
    "uvicorn_websocket",
    "warn_once",
    "watch_upgrade",
    "websocket_extensions",
    "websocket_server",
    "wrap_engineio_handler",
]

logger = logging.getLogger("roomcast")

# -- the versions tested ---------------------------------------------------------------------

TESTED: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "python-socketio": ((5, 12), (5, 19)),
    "python-engineio": ((4, 11), (4, 16)),
    "uvicorn": ((0, 35), (0, 56)),  # websockets-sansio came in 0.35
    "websockets": ((13, 1), (18,)),
}
"""Each distribution relied on, and the releases tested with it: at least the first, below the
second. The extras in `pyproject.toml` carry the same upper bounds."""

REQUIRED = ("python-socketio", "python-engineio")
"""Without these in `TESTED`, the adapter refuses to attach."""

FAST_PATH = ("uvicorn", "websockets")
"""Without these in `TESTED`, the fast path is off."""

_reported: set[str] = set()
"""Why the fast path is off, for each reason already logged (`warn_once`)."""


@functools.cache
def installed_version(distribution: str) -> str | None:
    """The installed version of `distribution` (`importlib.metadata`), or `None`."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def tested_range(distribution: str) -> str:
    """The releases of `distribution` tested, as a requirement: `">=0.35,<0.56"`."""
    low, high = TESTED[distribution]
    return f">={'.'.join(map(str, low))},<{'.'.join(map(str, high))}"


def _outside(distribution: str) -> str | None:
    """What is installed of `distribution` and the range tested, when it is not in that range;
    else `None`. Release numbers only: `5.19.0rc1` is outside `<5.19`."""
    low, high = TESTED[distribution]
    version = installed_version(distribution)
    if version is None:
        return f"{distribution} is not installed (tested: {tested_range(distribution)})"
    match = re.match(r"\d+(?:\.\d+)*", version)
    release = () if match is None else tuple(int(part) for part in match.group().split("."))
    if not low <= release < high:
        return f"{distribution} {version} is installed (tested: {tested_range(distribution)})"
    return None


def check_versions() -> str | None:
    """Check the installed versions against `TESTED`; return why the fast path is off, or
    `None` when it is on.

    Raises `RuntimeError` when python-socketio or python-engineio is outside its range, or not
    installed. When uvicorn or websockets is, the fast path is off: the reason is logged on the
    `roomcast` logger, at warning level, the first time it is found in this process.
    """
    refused = [found for name in REQUIRED if (found := _outside(name)) is not None]
    if refused:
        tested = ", ".join(f"{name} {tested_range(name)}" for name in REQUIRED)
        raise RuntimeError(
            "roomcast.adapters.socketio relies on internals of python-socketio and "
            f"python-engineio, and supports only the releases it is tested with ({tested}); "
            f"{'; '.join(refused)}. Install supported releases: pip install 'roomcast[socketio]'."
        )
    off = [found for name in FAST_PATH if (found := _outside(name)) is not None]
    if not off:
        return None
    reason = "; ".join(off)
    warn_once(
        "The Socket.IO fast path (direct websocket writes) is off: %s. Broadcasts go through "
        "Engine.IO's queue.",
        reason,
    )
    return reason


def warn_once(message: str, reason: str) -> None:
    """Log `message % reason` on the `roomcast` logger, at warning level, the first time this
    process meets `reason` (why the fast path is off, for a setup or for some websockets)."""
    if reason not in _reported:
        _reported.add(reason)
        logger.warning(message, reason)


# -- python-socketio ---------------------------------------------------------------------------

EventHandler = Callable[[str, int | None, list[Any]], Awaitable[None]]
"""`handle(eio_sid, ack_id, data)`: one event, `data` being the event's name and arguments."""


def replace_event_handler(sio: Any, namespace: str, handle: EventHandler) -> None:
    """Hand `handle(eio_sid, ack_id, data)` each event of `namespace` that `sio` receives, with
    the id of the acknowledgement the client asked for (`None`: it asked for none), which
    python-socketio's public handlers do not tell.

    Reads `sio._handle_event`, python-socketio's `AsyncServer._handle_event(eio_sid, namespace,
    id, data)` (or what an earlier call put there), and replaces it with an instance attribute:
    a function that hands the events of `namespace` to `handle` and the others to what it
    replaces. python-socketio calls it through `self` for each EVENT and BINARY_EVENT packet.
    """
    next_handler: Callable[[str, str | None, int | None, list[Any]], Awaitable[None]]
    next_handler = sio._handle_event

    async def handle_event(
        eio_sid: str, event_namespace: str | None, ack_id: int | None, data: list[Any]
    ) -> None:
        if (event_namespace or "/") != namespace:
            await next_handler(eio_sid, event_namespace, ack_id, data)
        else:
            await handle(eio_sid, ack_id, data)

    sio._handle_event = handle_event


ConnectHandler = Callable[[str, str, Any], Awaitable[None]]


def replace_connect_handler(
    sio: Any, namespace: str, handle: Callable[[ConnectHandler, str, str, Any], Awaitable[None]]
) -> None:
    """Hand each CONNECT packet of `namespace` to `handle(next, eio_sid, namespace, data)`
    before python-socketio connects it (`data`: what the client sent, its auth), which calls
    `next(eio_sid, namespace, data)` to go on, with the data it chooses.

    Reads `sio._handle_connect`, python-socketio's `AsyncServer._handle_connect(eio_sid,
    namespace, data)`, and replaces it with an instance attribute; python-socketio calls it
    through `self` for each CONNECT packet.
    """
    next_handler: ConnectHandler = sio._handle_connect

    async def handle_connect(eio_sid: str, connect_namespace: str | None, data: Any) -> None:
        if (connect_namespace or "/") != namespace:
            await next_handler(eio_sid, connect_namespace, data)  # type: ignore[arg-type]
        else:
            await handle(next_handler, eio_sid, namespace, data)

    sio._handle_connect = handle_connect


PreConnect = Callable[[str, str], Awaitable[str | None]]


def replace_pre_connect(
    sio: Any, pre_connect: Callable[[PreConnect, str, str], Awaitable[str | None]]
) -> None:
    """Have `pre_connect(next, eio_sid, namespace)` choose the sid of each connection to a
    namespace, calling `next(eio_sid, namespace)` (python-socketio's own) to make it.

    Reads `sio.manager.pre_connect`, the manager's undocumented `pre_connect(eio_sid,
    namespace)` that makes a connection's sid and registers it (or returns `None` when the
    Engine.IO connection is already connected to the namespace), and replaces it with an
    instance attribute; `_handle_connect` and the manager's `connect` call it through the
    manager.
    """
    next_pre_connect: PreConnect = sio.manager.pre_connect

    async def chosen(eio_sid: str, namespace: str) -> str | None:
        return await pre_connect(next_pre_connect, eio_sid, namespace)

    sio.manager.pre_connect = chosen


async def pre_connect_with_sid(
    sio: Any, pre_connect: PreConnect, eio_sid: str, namespace: str, sid: str
) -> str | None:
    """Call `pre_connect` (python-socketio's) so that the sid it makes is `sid`.

    Sets `sio.eio.generate_id`, the Engine.IO server's method that python-socketio's
    `pre_connect` calls once to make a sid, to an instance attribute that returns `sid`, for
    the time of the call (which does not wait on anything in between), and removes it after.
    """
    sio.eio.generate_id = lambda: sid
    try:
        return await pre_connect(eio_sid, namespace)
    finally:
        del sio.eio.generate_id


def add_to_connect_reply(
    sio: Any, namespace: str, extra: Callable[[str], Mapping[str, Any]]
) -> None:
    """Add `extra(sid)` to the data of each CONNECT reply of `namespace` (`{"sid": sid}`).

    Reads `sio._send_packet(eio_sid, pkt)`, python-socketio's way to send a packet, and
    replaces it with an instance attribute that, for a `sio.packet_class` CONNECT packet of
    `namespace` whose `data` is a dict with a `"sid"`, replaces its `data` first.
    """
    send_packet: Callable[[str, Any], Awaitable[None]] = sio._send_packet

    async def send(eio_sid: str, pkt: Any) -> None:
        data = pkt.data
        if (
            pkt.packet_type == socketio.packet.CONNECT
            and (pkt.namespace or "/") == namespace
            and isinstance(data, dict)
            and isinstance(data.get("sid"), str)
        ):
            pkt.data = {**data, **extra(data["sid"])}
        await send_packet(eio_sid, pkt)

    sio._send_packet = send


def refuse_off_asyncio(sio: Any) -> None:
    """Make every request `sio` is asked to handle fail at once, with a clear message, when
    it does not run on asyncio (under trio, python-engineio otherwise fails deep inside).

    Replaces `sio.handle_request` (python-socketio's public entry point, which ASGI apps call
    for each request) with an instance attribute that checks for a running asyncio loop,
    then awaits the method it replaces.
    """
    handle: Callable[..., Awaitable[Any]] = sio.handle_request

    async def handle_request(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "python-socketio's server, and roomcast's Socket.IO adapter with it, runs on "
                "asyncio only: serve it with an asyncio ASGI server such as uvicorn."
            ) from None
        return await handle(*args, **kwargs)

    sio.handle_request = handle_request


async def send_ack(sio: Any, eio_sid: str, namespace: str, ack_id: int, args: list[Any]) -> None:
    """Send the acknowledgement `ack_id` with `args` to the Engine.IO connection `eio_sid`.

    Calls `sio.packet_class(ACK, namespace=, id=, data=)` (the server's undocumented packet
    class) and awaits `sio._send_packet(eio_sid, pkt)`, python-socketio's own way to send it.
    """
    pkt = sio.packet_class(socketio.packet.ACK, namespace=namespace, id=ack_id, data=args)
    await sio._send_packet(eio_sid, pkt)


def event_packets(
    sio: Any, namespace: str, args: list[Any], ack_id: int | None = None
) -> tuple[list[Any], list[int], str | None]:
    """The event `args` (its name, then its arguments) of `namespace` as Engine.IO packets,
    built once for any number of receivers: the packets, the size of each, and the encoded text
    of the one packet when there is one and it is text (`None` with binary attachments). With
    `ack_id`, the event asks its one receiver for that acknowledgement.

    Calls `sio.packet_class(EVENT, namespace=, data=, id=).encode()` (the server's undocumented
    packet class, read at each call), which gives a string, or a string and its binary
    attachments, and makes each one an `engineio.packet.Packet(MESSAGE, part)`, whose `binary`
    it reads and whose `encode()` it calls.
    """
    pkt = sio.packet_class(socketio.packet.EVENT, namespace=namespace, data=args, id=ack_id)
    encoded = pkt.encode()
    parts = encoded if isinstance(encoded, list) else [encoded]
    packets = [engineio.packet.Packet(engineio.packet.MESSAGE, part) for part in parts]
    sizes = [len(part) for part in parts]
    text = None
    if len(packets) == 1 and not packets[0].binary:
        text = packets[0].encode()
    return packets, sizes, text


def expect_ack(sio: Any, sid: str, callback: Callable[..., None]) -> int:
    """A new acknowledgement id for the connection `sid`: when its client acknowledges it,
    python-socketio calls `callback(*args)` (and forgets it).

    Calls `sio.manager._generate_ack_id(sid, callback)`, the manager's undocumented way to
    register the callback of an emit (it keeps it in `sio.manager.callbacks[sid][id]`, until
    the acknowledgement comes or the connection closes).
    """
    ack_id: int = sio.manager._generate_ack_id(sid, callback)
    return ack_id


def forget_ack(sio: Any, sid: str, ack_id: int) -> None:
    """Forget the acknowledgement `ack_id` of `sid` that `expect_ack` registered, so that a
    client that never answers keeps nothing alive (no-op once it came, or the connection went).

    Removes `sio.manager.callbacks[sid][ack_id]` (undocumented).
    """
    callbacks = sio.manager.callbacks.get(sid)
    if callbacks is not None:
        callbacks.pop(ack_id, None)


def session_id(sio: Any, eio_sid: str, namespace: str) -> str | None:
    """The Socket.IO sid of the Engine.IO connection `eio_sid` in `namespace`, or `None`.

    Calls `sio.manager.sid_from_eio_sid(eio_sid, namespace)` (undocumented).
    """
    sid: str | None = sio.manager.sid_from_eio_sid(eio_sid, namespace)
    return sid


def pending_binary(sio: Any, eio_sid: str) -> Any:
    """The binary packet that the Engine.IO connection `eio_sid` announced and whose
    attachments python-socketio is still collecting, or `None`.

    Reads `sio._binary_packet` (a dict, Engine.IO sid → python-socketio `Packet`, undocumented):
    python-socketio keeps each attachment frame in that packet until it has as many as the
    packet announced.
    """
    return sio._binary_packet.get(eio_sid)


def forget_binary(sio: Any, eio_sid: str) -> None:
    """Drop the attachments python-socketio holds for `eio_sid` (see `pending_binary`).

    Removes the entry of `eio_sid` from `sio._binary_packet`, as python-socketio itself does
    when that connection goes."""
    sio._binary_packet.pop(eio_sid, None)


def engineio_socket(sio: Any, sid: str, namespace: str) -> Any:
    """The Engine.IO socket (python-engineio's `AsyncSocket`) that carries the Socket.IO
    connection `sid` of `namespace`, or `None`.

    Calls `sio.manager.eio_sid_from_sid(sid, namespace)` and reads `sio.eio.sockets` (a dict,
    Engine.IO sid → socket), both undocumented.
    """
    return sio.eio.sockets.get(sio.manager.eio_sid_from_sid(sid, namespace))


# -- python-engineio ---------------------------------------------------------------------------


def replace_engineio_connect(sio: Any, on_socket: Callable[[Any], None]) -> None:
    """Call `on_socket(socket)` with each new Engine.IO socket of `sio`, before its client can
    send anything on it (such as a request to upgrade to a websocket).

    Reads `sio.eio.handlers["connect"]` (python-socketio's `sio._handle_eio_connect`, or what an
    earlier call put there) and replaces it, through python-engineio's public `sio.eio.on`, with
    a function that looks the new socket up in `sio.eio.sockets` (python-engineio puts it there
    before it runs the handler), calls `on_socket` with it, then awaits the handler it replaces.
    """
    next_connect: Callable[..., Awaitable[Any]] = sio.eio.handlers["connect"]

    async def handle_connect(eio_sid: str, environ: dict[str, Any], *args: Any) -> Any:
        socket = sio.eio.sockets.get(eio_sid)
        if socket is not None:
            on_socket(socket)
        return await next_connect(eio_sid, environ, *args)

    sio.eio.on("connect", handle_connect)


def wrap_engineio_handler(
    sio: Any, event: str, wrap: Callable[[Callable[..., Awaitable[Any]]], Callable[..., Any]]
) -> None:
    """Put `wrap(handler)` in the place of python-engineio's handler of `event` (`"message"`
    or `"disconnect"`) for `sio`.

    Reads `sio.eio.handlers[event]` (python-socketio's `sio._handle_eio_message` or
    `_handle_eio_disconnect`, or what an earlier call put there), undocumented, and replaces it
    through python-engineio's public `sio.eio.on(event, ...)`.
    """
    sio.eio.on(event, wrap(sio.eio.handlers[event]))


def engineio_socket_of(sio: Any, eio_sid: str) -> Any:
    """The Engine.IO socket of the Engine.IO sid `eio_sid`, or `None`. Reads `sio.eio.sockets`
    (undocumented)."""
    return sio.eio.sockets.get(eio_sid)


def engineio_queue(socket: Any) -> Any:
    """The `asyncio.Queue` of the packets waiting to be sent to an Engine.IO socket.

    Reads `socket.queue` (undocumented; made with the socket, never replaced). Its writer (the
    websocket's writer task, or a long-polling GET request) takes the packets off it; `None` on
    it is the marker that ends the writer.
    """
    return socket.queue


def queue_length(socket: Any) -> Callable[[], int | None]:
    """A function, made once per connection, that tells how many packets wait in the queue of
    the Engine.IO `socket`, or `None` once the socket is closed.

    Reads `socket.queue` once and, at each call, `socket.closed` (undocumented) and the length
    of `queue._queue` (the deque behind `asyncio.Queue.qsize()`, read directly: this runs for
    each receiver of a broadcast that takes the queue; a queue of another kind is asked its
    `qsize()`).
    """
    queue = socket.queue
    items = getattr(queue, "_queue", None)
    if isinstance(items, collections.deque):

        def length() -> int | None:
            return None if socket.closed else len(items)

    else:

        def length() -> int | None:
            return None if socket.closed else int(queue.qsize())

    return length


def engineio_idle(socket: Any) -> Callable[[], bool] | None:
    """A function, made once per connection, that tells whether nothing is pending for the
    Engine.IO `socket` in python-engineio: its queue is empty, its writer task waits on it, and
    it is not closing. `None` when the socket's queue is not an `asyncio.Queue` as known here.

    Reads `socket.queue` once, and its `_getters` (the deque of the futures of the tasks that
    wait in `get()`) and `_queue` (the deque of its items), both private to asyncio and never
    replaced; at each call, whether the last getter is still pending, whether `_queue` is empty,
    and `socket.closing` (undocumented). The writer task then holds no packet it took from the
    queue: from Python 3.12 it waits in `get()` itself, and on 3.11 the task that
    `asyncio.wait_for` runs `get()` in waits for it, the same signal.
    """
    queue = socket.queue
    getters = getattr(queue, "_getters", None)
    items = getattr(queue, "_queue", None)
    if (
        not isinstance(getters, collections.deque)
        or not isinstance(items, collections.deque)
        or not isinstance(getattr(socket, "closing", None), bool)
    ):
        return None

    def idle() -> bool:
        if getters and not getters[-1].done() and not items:
            return not socket.closing
        return False

    return idle


def direct_write(
    socket: Any, conn: Any, transport: Any, open_state: Any, max_buffered: int
) -> Callable[[bytes], bool] | None:
    """A function, made once per connection, that writes a websocket frame straight to
    `transport` and returns True when nothing can be reordered by it, or returns False: the
    Engine.IO `socket` is idle (see `engineio_idle`, whose checks it makes inline: this runs for
    each receiver of a broadcast), the websockets `conn`'s `state` is `open_state`, and the
    asyncio `transport` is not closing and holds fewer than `max_buffered` bytes unsent.
    `None` when the socket's queue is not an `asyncio.Queue` as known here.

    Reads what `engineio_idle` reads (the queue's `_getters` and `_queue`, `socket.closing`),
    and calls the transport's public `is_closing`, `get_write_buffer_size` and `write`.
    """
    if engineio_idle(socket) is None:
        return None
    queue = socket.queue
    getters, items = queue._getters, queue._queue
    is_closing, buffered, write = (
        transport.is_closing,
        transport.get_write_buffer_size,
        transport.write,
    )

    def write_now(frame: bytes) -> bool:
        if (
            getters
            and not getters[-1].done()
            and not items
            and not socket.closing
            and conn.state is open_state
            and not is_closing()
            and buffered() < max_buffered
        ):
            write(frame)
            return True
        return False

    return write_now


def drop_queued(queue: Any, count: int) -> int:
    """Take up to `count` packets off the head of an Engine.IO socket's queue; return how many.

    Calls the queue's public `get_nowait`, `task_done` and `put_nowait`, and keeps
    python-engineio's marker that ends the socket's writer (`None`), undocumented, in place.
    """
    dropped = 0
    while dropped < count and not queue.empty():
        pkt = queue.get_nowait()
        queue.task_done()
        if pkt is None:
            queue.put_nowait(None)
            break
        dropped += 1
    return dropped


def close_socket(socket: Any, reason: str, *, abort: bool = False) -> Coroutine[Any, Any, Any]:
    """A coroutine that closes the Engine.IO `socket` at once, sending it a CLOSE packet (and,
    with `abort`, closing its websocket without waiting for the client).

    Calls `socket.close(wait=False, abort=abort, reason=reason)` (python-engineio's
    `AsyncSocket.close`, undocumented): the server's `disconnect` handlers run with `reason`,
    and it does not wait for the queue to drain.
    """
    coro: Coroutine[Any, Any, Any] = socket.close(wait=False, abort=abort, reason=reason)
    return coro


def end_writer(socket: Any) -> None:
    """Make the writer of the Engine.IO `socket` stop once it has sent what is queued: on a
    websocket it then closes it, whatever the client does.

    Puts python-engineio's end marker (`None`, undocumented) on `socket.queue`, as
    python-engineio itself does when its reader ends.
    """
    socket.queue.put_nowait(None)


def is_upgraded(socket: Any) -> bool:
    """Whether the Engine.IO `socket` is on a websocket: opened as one, or upgraded to one from
    long-polling. Reads `socket.upgraded` (undocumented)."""
    return getattr(socket, "upgraded", None) is True


_UPGRADE = "_upgrade_websocket"


class _Upgrade:
    """Stands for an Engine.IO socket's `_upgrade_websocket(environ)`: tells a listener of the
    environ of the websocket request, then awaits the method."""

    __slots__ = ("listener", "method")

    def __init__(
        self,
        method: Callable[[dict[str, Any]], Awaitable[Any]],
        listener: Callable[[dict[str, Any]], None],
    ) -> None:
        self.method = method
        self.listener = listener

    async def __call__(self, environ: dict[str, Any]) -> Any:
        self.listener(environ)
        return await self.method(environ)


def watch_upgrade(socket: Any, listener: Callable[[dict[str, Any]], None]) -> None:
    """Call `listener(environ)` with the environ of the websocket request that the long-polling
    Engine.IO `socket` upgrades through, as the upgrade starts. Does nothing to a socket already
    on a websocket, or already watched.

    Reads `socket.upgraded` and replaces `socket._upgrade_websocket` with an instance attribute
    that stands for the class's method (python-engineio's `AsyncSocket._upgrade_websocket`,
    which `handle_get_request` looks up on the socket by name, `'_upgrade_' + transport`, for
    each request to upgrade): it calls `listener`, then the method.
    """
    if is_upgraded(socket) or isinstance(vars(socket).get(_UPGRADE), _Upgrade):
        return
    setattr(socket, _UPGRADE, _Upgrade(getattr(socket, _UPGRADE), listener))


def upgrade_listener(socket: Any) -> Callable[[dict[str, Any]], None] | None:
    """The listener `watch_upgrade` gave the Engine.IO `socket`, or `None`. Reads the socket's
    instance attribute `_upgrade_websocket`."""
    watch = getattr(socket, "__dict__", {}).get(_UPGRADE)
    return watch.listener if isinstance(watch, _Upgrade) else None


# -- the ASGI environ, uvicorn and websockets ----------------------------------------------------

UVICORN_SANSIO = "uvicorn.protocols.websockets.websockets_sansio_impl"
"""The module of uvicorn's `WebSocketsSansIOProtocol` (`ws="websockets-sansio"`)."""


def _sansio_protocol(environ: Mapping[str, Any]) -> Any:
    """uvicorn's `WebSocketsSansIOProtocol` serving the websocket request of `environ`, or
    `None`: `environ["asgi.send"].__self__`, when it is one (see `uvicorn_websocket`)."""
    scope = environ.get("asgi.scope")
    if not isinstance(scope, Mapping) or scope.get("type") != "websocket":
        return None
    protocol_class = getattr(sys.modules.get(UVICORN_SANSIO), "WebSocketsSansIOProtocol", None)
    protocol = getattr(environ.get("asgi.send"), "__self__", None)
    if not isinstance(protocol_class, type) or not isinstance(protocol, protocol_class):
        return None
    return protocol


def websocket_server(environ: Mapping[str, Any]) -> str:
    """What serves the websocket request of `environ`, for a message: the class of the object
    whose method `environ["asgi.send"]` is (such as uvicorn's `WSProtocol`), or a description
    of the environ when it has no such method (python-engineio's aiohttp mode has none)."""
    owner = getattr(environ.get("asgi.send"), "__self__", None)
    if owner is not None:
        return f"{type(owner).__module__}.{type(owner).__qualname__}"
    if "asgi.send" in environ:
        return "an ASGI server"
    return "a server that is not ASGI (such as python-engineio's aiohttp mode)"


def uvicorn_websocket(environ: Mapping[str, Any]) -> tuple[Any, Any] | None:
    """The websockets `Protocol` and the asyncio transport of the connection that serves the
    websocket request of `environ` (python-engineio's ASGI environ), when uvicorn's
    websockets-sansio protocol serves it; else `None`.

    Reads `environ["asgi.scope"]` (its `type`) and `environ["asgi.send"]`, which
    python-engineio's ASGI driver puts there (undocumented); `send.__self__`, which must be a
    `WebSocketsSansIOProtocol` of the module `UVICORN_SANSIO`, found in `sys.modules` (uvicorn
    is never imported here, and documents neither the module nor the class); and that
    protocol's attributes `conn` (a websockets `Protocol`) and `transport` (with `write`,
    `is_closing` and `get_write_buffer_size`), undocumented.
    """
    protocol = _sansio_protocol(environ)
    if protocol is None:
        return None
    # Imported by uvicorn's module above, so present whenever it is.
    from websockets.protocol import Protocol

    conn = getattr(protocol, "conn", None)
    transport = getattr(protocol, "transport", None)
    if not isinstance(conn, Protocol) or not all(
        callable(getattr(transport, name, None))
        for name in ("write", "is_closing", "get_write_buffer_size")
    ):
        return None
    return conn, transport


def share_deflate(environ: Mapping[str, Any]) -> bool:
    """Make the websocket of `environ`, whose handshake uvicorn's websockets-sansio protocol
    has processed but not yet answered, compress what the server sends without context
    takeover (RFC 7692, 7.1.1.1: `server_no_context_takeover`, which a server may set whether
    or not the client asked for it), so that each message compresses alone and one compressed
    frame can serve every connection with the same window. Return whether it did; `False`
    (and nothing changed) when the handshake is answered already, or per-message deflate was
    not negotiated, or it was without context takeover already, or anything is not as known
    here.

    uvicorn calls the websockets `ServerProtocol.accept(request)` (public) when the request
    arrives, before the ASGI app runs, which negotiates the extensions its protocol was made
    with (`ServerPerMessageDeflateFactory(server_max_window_bits=12, client_max_window_bits=12,
    compress_settings={"memLevel": 5})`, unless run with `ws_per_message_deflate=False`), and
    sends the response it got only when the app accepts the websocket. This reads uvicorn's
    protocol (`_sansio_protocol`) and its `handshake_complete`, `request` and `response`, and
    the websockets `conn`'s `state`, `extensions` and `available_extensions` (each factory's
    parameters, public attributes of `ServerPerMessageDeflateFactory`); it replaces
    `conn.available_extensions` with the same factories but for `server_no_context_takeover`,
    calls `conn.accept(protocol.request)` again (the same request, so the same outcome but for
    that parameter), and puts the new response in `protocol.response`, all on this one
    connection's objects. Should that response not be a 101, everything is put back.
    """
    protocol = _sansio_protocol(environ)
    if protocol is None or getattr(protocol, "handshake_complete", True) is not False:
        return False
    # Imported by uvicorn's module, so present whenever its protocol was found.
    from websockets.extensions.permessage_deflate import (
        PerMessageDeflate,
        ServerPerMessageDeflateFactory,
    )
    from websockets.http11 import Request, Response
    from websockets.protocol import State
    from websockets.server import ServerProtocol

    conn = getattr(protocol, "conn", None)
    request, response = getattr(protocol, "request", None), getattr(protocol, "response", None)
    if (
        not isinstance(conn, ServerProtocol)
        or conn.state is not State.CONNECTING
        or not isinstance(request, Request)
        or not isinstance(response, Response)
        or response.status_code != 101
    ):
        return False
    negotiated = conn.extensions
    factories = conn.available_extensions
    if not factories or not any(
        type(ext) is PerMessageDeflate and not ext.local_no_context_takeover for ext in negotiated
    ):
        return False
    sharing = []
    for factory in factories:
        if type(factory) is not ServerPerMessageDeflateFactory:
            return False
        assert isinstance(factory, ServerPerMessageDeflateFactory)  # for the type checker
        sharing.append(
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=factory.client_no_context_takeover,
                server_max_window_bits=factory.server_max_window_bits,
                client_max_window_bits=factory.client_max_window_bits,
                compress_settings=factory.compress_settings,
                require_client_max_window_bits=factory.require_client_max_window_bits,
            )
        )
    conn.available_extensions = sharing
    again = conn.accept(request)
    if again.status_code != 101:
        conn.available_extensions, conn.extensions = factories, negotiated
        return False
    protocol.response = again
    return True


def shared_window(conn: Any) -> int | None:
    """How the websockets `conn` sends messages, when one frame of a message can serve every
    connection that sends alike: `0`, no extension was negotiated (plain frames); a number of
    window bits, per-message deflate was, without server context takeover (each message
    compressed alone, within that window). `None` for anything else.

    Reads `conn.extensions` (undocumented) and, of a `PerMessageDeflate` in it,
    `local_no_context_takeover` and `local_max_window_bits` (undocumented).
    """
    extensions = conn.extensions
    if not extensions:
        return 0
    from websockets.extensions.permessage_deflate import PerMessageDeflate

    if len(extensions) == 1:
        (ext,) = extensions
        bits = getattr(ext, "local_max_window_bits", None)
        if (
            type(ext) is PerMessageDeflate
            and ext.local_no_context_takeover is True
            and isinstance(bits, int)
            and 9 <= bits <= 15
        ):
            return bits
    return None


def websocket_extensions(conn: Any) -> str:
    """The extensions negotiated on the websockets `conn`, for a message. Reads
    `conn.extensions` (undocumented), and each one's `name` and `local_no_context_takeover`
    when it has one."""
    described = []
    for ext in conn.extensions:
        name = str(getattr(ext, "name", type(ext).__name__))
        if getattr(ext, "local_no_context_takeover", True) is False:
            name += " with server context takeover"
        described.append(name)
    return ", ".join(described) or "none"

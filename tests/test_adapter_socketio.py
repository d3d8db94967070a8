"""What only the python-socketio adapter does; the shared table is in test_semantics.py."""

from __future__ import annotations

import asyncio
import collections
import importlib
import inspect
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import anyio
import engineio
import engineio.async_server
import engineio.async_socket
import engineio.base_socket
import engineio.packet
import pytest
import socketio
import uvicorn.config
import websockets.asyncio.client
import websockets.protocol
import websockets.server
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory

from roomcast import App, ConnectionClosed, Request
from roomcast.adapters import _internals
from roomcast.adapters._direct import text_frame
from roomcast.adapters.socketio import SocketIOTransport, attach
from roomcast.testing import Message

from .servers import ROOT, Client, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # python-socketio runs on asyncio only


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def sio(app: App) -> socketio.AsyncServer:
    server = socketio.AsyncServer(async_mode="asgi")
    attach(app, server)
    return server


@pytest.fixture
async def url(sio: socketio.AsyncServer) -> AsyncIterator[str]:
    async with serve(socketio.ASGIApp(sio)) as base:
        yield base


# -- canaries ------------------------------------------------------------------------------------
#
# The adapter reaches the internals of python-socketio, python-engineio, uvicorn, websockets and
# asyncio through `roomcast.adapters._internals` only. Each of its functions has a canary here,
# `test_canary_<function>`, which fails when what the function relies on disappears or changes
# shape, so that a new release fails here before it fails users.

VERSION_CHECK = {
    "FAST_PATH",
    "REQUIRED",
    "TESTED",
    "UVICORN_SANSIO",  # checked by the canary of `uvicorn_websocket`
    "check_versions",
    "installed_version",
    "tested_range",
    "warn_once",  # logging, relying on nothing of another library's
}


def test_each_internal_relied_on_has_a_canary() -> None:
    canaries = {name.removeprefix("test_canary_") for name in globals() if "canary_" in name}
    assert canaries == set(_internals.__all__) - VERSION_CHECK


def engineio_server() -> Any:
    return engineio.AsyncServer(async_mode="asgi")


async def test_canary_replace_event_handler(app: App, sio: socketio.AsyncServer, url: str) -> None:
    params = list(inspect.signature(socketio.AsyncServer._handle_event).parameters)
    assert params == ["self", "eio_sid", "namespace", "id", "data"]
    seen: list[tuple[int | None, list[Any]]] = []
    three = asyncio.Event()

    async def handle(eio_sid: str, ack_id: int | None, data: list[Any]) -> None:
        seen.append((ack_id, data))
        if len(seen) == 3:
            three.set()

    sio.on("connect", lambda sid, environ: None, namespace="/probe")
    _internals.replace_event_handler(sio, "/probe", handle)

    @app.route("ping")
    async def ping(req: Request) -> str:
        return "pong"

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/", "/probe"], transports=["websocket"])
    try:
        # python-socketio looks `_handle_event` up on the server for each event it decodes,
        # text or binary, with the id of the acknowledgement asked for, if any...
        await client.emit("text", 1, namespace="/probe", callback=lambda *args: None)
        await client.emit("no ack", namespace="/probe")
        await client.emit("bin", b"\x01", namespace="/probe", callback=lambda *args: None)
        await asyncio.wait_for(three.wait(), 5)
        # ...and the events of other namespaces go on to what it replaced.
        assert await client.call("ping", timeout=5) == "pong"
    finally:
        await client.disconnect()
    assert [data for _, data in seen] == [["text", 1], ["no ack"], ["bin", b"\x01"]]
    assert [ack_id is None for ack_id, _ in seen] == [False, True, False]


async def test_canary_send_ack(monkeypatch: pytest.MonkeyPatch) -> None:
    assert inspect.iscoroutinefunction(socketio.AsyncServer._send_packet)
    params = list(inspect.signature(socketio.AsyncServer._send_packet).parameters)
    assert params == ["self", "eio_sid", "pkt"]
    server = socketio.AsyncServer(async_mode="asgi")
    assert server.packet_class is socketio.packet.Packet
    sent: list[tuple[str, Any]] = []

    async def send(eio_sid: str, data: Any) -> None:
        sent.append((eio_sid, data))

    monkeypatch.setattr(server.eio, "send", send)
    await _internals.send_ack(server, "e1", "/rooms", 7, ["done"])
    await _internals.send_ack(server, "e1", "/", 8, [])
    assert sent == [("e1", '3/rooms,7["done"]'), ("e1", "38[]")]


def test_canary_event_packets() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    assert server.packet_class is socketio.packet.Packet
    packets, sizes, text = _internals.event_packets(server, "/", ["hello", {"a": 1}])
    assert [(pkt.packet_type, pkt.binary) for pkt in packets] == [(engineio.packet.MESSAGE, False)]
    assert text == packets[0].encode() == '42["hello",{"a":1}]'
    assert sizes == [len('2["hello",{"a":1}]')]
    # Binary attachments: the text packet with placeholders, then each attachment.
    packets, sizes, text = _internals.event_packets(server, "/rooms", ["file", b"\x00\xff"])
    assert text is None
    assert [(pkt.packet_type, pkt.binary) for pkt in packets] == [
        (engineio.packet.MESSAGE, False),
        (engineio.packet.MESSAGE, True),
    ]
    assert packets[0].encode() == '451-/rooms,["file",{"_placeholder":true,"num":0}]'
    assert packets[1].encode() == b"\x00\xff"
    assert sizes == [len(packets[0].data), 2]


async def test_canary_engineio_socket(app: App, sio: socketio.AsyncServer, url: str) -> None:
    found: dict[str, Any] = {}

    @app.route("probe")
    async def probe(req: Request) -> None:
        # python-socketio keeps a connection's session in its Engine.IO socket's.
        await sio.save_session(req.sid, {"mark": req.sid})
        socket = _internals.engineio_socket(sio, req.sid, "/")
        found["type"] = type(socket)
        found["session"] = socket.session["/"]
        found["unknown"] = _internals.engineio_socket(sio, "no such sid", "/")

    async with Client(url) as client:
        assert await client.call("probe") is None
        sid = client.sid
    assert found == {
        "type": engineio.async_socket.AsyncSocket,
        "session": {"mark": sid},
        "unknown": None,
    }


async def test_canary_session_id(app: App, sio: socketio.AsyncServer, url: str) -> None:
    found: dict[str, Any] = {}

    @app.route("probe")
    async def probe(req: Request) -> None:
        eio_sid = _internals.engineio_socket(sio, req.sid, "/").sid
        found["here"] = _internals.session_id(sio, eio_sid, "/") == req.sid
        found["elsewhere"] = _internals.session_id(sio, eio_sid, "/other")
        found["unknown"] = _internals.session_id(sio, "no such sid", "/")

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert found == {"here": True, "elsewhere": None, "unknown": None}


async def test_canary_replace_engineio_connect(
    app: App, sio: socketio.AsyncServer, url: str
) -> None:
    fresh = socketio.AsyncServer(async_mode="asgi")
    assert fresh.eio.handlers["connect"] == fresh._handle_eio_connect
    # python-engineio keeps a new socket in `sockets` before it runs the connect handler.
    connect = inspect.getsource(engineio.async_server.AsyncServer._handle_connect)
    assert connect.index("self.sockets[sid] = s") < connect.index("_trigger_event('connect'")
    seen: list[Any] = []
    found: list[Any] = []
    _internals.replace_engineio_connect(sio, seen.append)

    @app.route("probe")
    async def probe(req: Request) -> None:
        found.append(_internals.engineio_socket(sio, req.sid, "/"))

    async with Client(url) as client:  # python-socketio's handler ran too: it connected
        assert await client.call("probe") is None
    assert seen == found
    assert isinstance(seen[0], engineio.async_socket.AsyncSocket)


async def test_canary_engineio_queue(app: App, sio: socketio.AsyncServer, url: str) -> None:
    # Made with the socket, never replaced.
    init = inspect.getsource(engineio.base_socket.BaseSocket.__init__)
    assert "self.queue = self.server.create_queue()" in init
    found: dict[str, Any] = {}

    @app.route("probe")
    async def probe(req: Request) -> None:
        queue = _internals.engineio_queue(_internals.engineio_socket(sio, req.sid, "/"))
        found["type"] = type(queue)
        # What is put on it goes to the client.
        queue.put_nowait(engineio.packet.Packet(engineio.packet.MESSAGE, '2["pushed",1]'))

    async with Client(url) as client:
        assert await client.call("probe") is None
        assert await client.receive() == Message("pushed", 1)
    assert found == {"type": asyncio.Queue}


async def test_canary_queue_length() -> None:
    assert isinstance(asyncio.Queue[Any]()._queue, collections.deque)  # type: ignore[attr-defined]
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    length = _internals.queue_length(socket)
    assert length() == 0
    await socket.send(engineio.packet.Packet(engineio.packet.NOOP))
    assert length() == socket.queue.qsize() == 1
    await socket.close(wait=False, abort=True)
    assert length() is None

    class OtherQueue:
        def qsize(self) -> int:
            return 3

    other = engineio.async_socket.AsyncSocket(engineio_server(), "other")
    other.queue = OtherQueue()
    assert _internals.queue_length(other)() == 3  # asked its qsize()


async def test_canary_engineio_idle(app: App, sio: socketio.AsyncServer, url: str) -> None:
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    idle = _internals.engineio_idle(socket)
    assert idle is not None
    assert idle() is False  # no writer waits on the queue
    # python-engineio's writer takes packets off the queue with `poll()`.
    writer = asyncio.ensure_future(socket.poll())
    await anyio.wait_all_tasks_blocked()
    assert idle() is True
    socket.closing = True
    assert idle() is False
    socket.closing = False
    pkt = engineio.packet.Packet(engineio.packet.NOOP)
    socket.queue.put_nowait(pkt)
    assert idle() is False  # the writer is woken, and holds the packet
    assert await writer == [pkt]
    # On a live websocket connection, the same.
    found: dict[str, Any] = {}

    @app.route("probe")
    async def probe(req: Request) -> None:
        live = _internals.engineio_socket(sio, req.sid, "/")
        check = _internals.engineio_idle(live)
        assert check is not None
        found["idle writer"] = check()
        live.queue.put_nowait(engineio.packet.Packet(engineio.packet.NOOP))
        found["woken writer"] = check()

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert found == {"idle writer": True, "woken writer": False}


async def test_canary_drop_queued() -> None:
    # python-engineio ends a socket's writer with `None` on its queue: `poll()` keeps it there
    # and returns what came before it, then nothing.
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    queue = socket.queue
    a, b, c = (engineio.packet.Packet(engineio.packet.MESSAGE, data) for data in "abc")
    for item in (a, b, None, c):
        queue.put_nowait(item)
    assert _internals.drop_queued(queue, 1) == 1
    assert _internals.drop_queued(queue, 5) == 1  # up to the marker, which stays
    assert await socket.poll() == [c]
    assert await socket.poll() == []


async def test_canary_close_socket() -> None:
    close = inspect.signature(engineio.async_socket.AsyncSocket.close).parameters
    assert {"wait", "abort", "reason"} <= set(close)
    server = engineio_server()
    reasons: list[tuple[str, str]] = []
    server.on("disconnect", lambda sid, reason: reasons.append((sid, reason)))
    socket = engineio.async_socket.AsyncSocket(server, "sid")
    assert socket.closed is False
    await _internals.close_socket(socket, "slow consumer")
    assert reasons == [("sid", "slow consumer")]
    assert socket.closed is True
    assert [pkt.packet_type for pkt in await socket.poll()] == [engineio.packet.CLOSE]


async def test_canary_is_upgraded(app: App, sio: socketio.AsyncServer, url: str) -> None:
    fresh = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    assert _internals.is_upgraded(fresh) is False  # and long-polling sockets stay so
    found: list[bool] = []

    @app.route("probe")
    async def probe(req: Request) -> None:
        found.append(_internals.is_upgraded(_internals.engineio_socket(sio, req.sid, "/")))

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert found == [True]


async def test_canary_watch_upgrade() -> None:
    # A long-polling socket upgrades through `_upgrade_websocket(environ)`, looked up on the
    # socket by name for each request to upgrade, so that an instance attribute stands for it.
    upgrade = engineio.async_socket.AsyncSocket._upgrade_websocket
    assert inspect.iscoroutinefunction(upgrade)
    assert list(inspect.signature(upgrade).parameters) == ["self", "environ"]
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    seen: list[dict[str, Any]] = []
    _internals.watch_upgrade(socket, seen.append)
    _internals.watch_upgrade(socket, seen.append)  # once is enough
    socket.upgraded = True  # so that the class's method, called next, refuses at once
    environ = {"HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket"}
    with pytest.raises(OSError, match="upgraded already"):
        await socket.handle_get_request(environ)
    assert seen == [environ]
    # A socket already on a websocket is left alone.
    other = engineio.async_socket.AsyncSocket(engineio_server(), "other")
    other.upgraded = True
    _internals.watch_upgrade(other, seen.append)
    assert "_upgrade_websocket" not in vars(other)


def test_canary_upgrade_listener() -> None:
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    assert hasattr(socket, "__dict__")  # no __slots__: an instance attribute can be set
    assert _internals.upgrade_listener(socket) is None
    assert _internals.upgrade_listener(None) is None
    seen: list[dict[str, Any]] = []
    listener = seen.append
    _internals.watch_upgrade(socket, listener)
    assert _internals.upgrade_listener(socket) is listener


async def test_canary_uvicorn_websocket(app: App, sio: socketio.AsyncServer, url: str) -> None:
    assert uvicorn.config.WS_PROTOCOLS["websockets-sansio"] == (
        f"{_internals.UVICORN_SANSIO}:WebSocketsSansIOProtocol"
    )
    module = importlib.import_module(_internals.UVICORN_SANSIO)
    assert module.WebSocketsSansIOProtocol is WebSocketsSansIOProtocol
    assert inspect.iscoroutinefunction(WebSocketsSansIOProtocol.send)
    assert _internals.uvicorn_websocket({}) is None
    assert _internals.uvicorn_websocket({"asgi.scope": {"type": "http"}}) is None
    environs: dict[str, Any] = {}
    facts: dict[str, Any] = {}

    @app.on_connect
    async def remember(req: Request) -> None:
        environs[req.sid] = req.environ

    @app.route("probe")
    async def probe(req: Request) -> None:
        environ = environs[req.sid]
        found = _internals.uvicorn_websocket(environ)
        assert found is not None
        conn, transport = found
        facts["conn"] = type(conn)
        facts["state"] = conn.state
        facts["transport"] = isinstance(transport, asyncio.Transport)
        # uvicorn's `send` has written a frame to that transport by the time it returns, the
        # same bytes as `text_frame` (recorded by a stand-in, put back at once).
        protocol = environ["asgi.send"].__self__
        assert protocol.transport is transport
        recording = _Recording(transport)
        protocol.transport = recording
        try:
            await environ["asgi.send"]({"type": "websocket.send", "text": "6"})
        finally:
            protocol.transport = transport
        facts["written"] = recording.written

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert facts == {
        "conn": websockets.server.ServerProtocol,
        "state": websockets.protocol.State.OPEN,
        "transport": True,
        "written": [text_frame("6")],  # an Engine.IO noop
    }


class _Recording:
    """A transport that records what is written to it, and passes everything on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        self.inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


HANDSHAKE = (
    b"GET /socket.io/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
    b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n%s\r\n"
)


DEFLATE = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def handshake(factory: Any, offered: bytes) -> websockets.server.ServerProtocol:
    """A websockets server connection made with `factory` (or no extension), opened by a
    request that offers `offered`."""
    conn = websockets.server.ServerProtocol(extensions=factory and [factory])
    conn.receive_data(HANDSHAKE % offered)
    (request,) = conn.events_received()
    conn.send_response(conn.accept(request))
    assert conn.state is websockets.protocol.State.OPEN
    return conn


def test_canary_shared_window() -> None:
    assert issubclass(websockets.server.ServerProtocol, websockets.protocol.Protocol)
    conn = websockets.server.ServerProtocol(extensions=[ServerPerMessageDeflateFactory()])
    assert _internals.shared_window(conn) == 0  # nothing negotiated yet
    shared = ServerPerMessageDeflateFactory(server_no_context_takeover=True)
    assert _internals.shared_window(handshake(shared, b"")) == 0
    assert _internals.shared_window(handshake(None, DEFLATE)) == 0
    assert _internals.shared_window(handshake(shared, DEFLATE)) == 15
    shared = ServerPerMessageDeflateFactory(
        server_no_context_takeover=True, server_max_window_bits=12
    )
    assert _internals.shared_window(handshake(shared, DEFLATE)) == 12
    # Each connection's messages compressed with what it sent before: no frame can be shared.
    assert _internals.shared_window(handshake(ServerPerMessageDeflateFactory(), DEFLATE)) is None


def test_canary_websocket_extensions() -> None:
    conn = handshake(ServerPerMessageDeflateFactory(), DEFLATE)
    assert (
        _internals.websocket_extensions(conn) == "permessage-deflate with server context takeover"
    )
    shared = ServerPerMessageDeflateFactory(server_no_context_takeover=True)
    assert _internals.websocket_extensions(handshake(shared, DEFLATE)) == "permessage-deflate"
    assert _internals.websocket_extensions(handshake(None, DEFLATE)) == "none"


def test_canary_websocket_server() -> None:
    class Server:
        async def send(self, message: Any) -> None: ...

    assert _internals.websocket_server({"asgi.send": Server().send}) == (
        f"{__name__}.test_canary_websocket_server.<locals>.Server"
    )
    assert _internals.websocket_server({"asgi.send": print}) == "builtins.module"
    assert _internals.websocket_server({"asgi.send": lambda message: None}) == "an ASGI server"
    assert "aiohttp" in _internals.websocket_server({})


@pytest.mark.parametrize("deflate", [True, False])
async def test_canary_share_deflate(deflate: bool) -> None:
    """uvicorn's websockets-sansio protocol has negotiated the extensions, and not answered,
    when the ASGI app runs: what `share_deflate` does then is what the client is answered."""
    done: list[bool] = []

    async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            return
        environ = {"asgi.scope": scope, "asgi.send": send}
        assert await receive() == {"type": "websocket.connect"}
        done.append(_internals.share_deflate(environ))
        done.append(_internals.share_deflate(environ))  # once is enough
        await send({"type": "websocket.accept"})
        done.append(_internals.share_deflate(environ))  # too late: answered
        await send({"type": "websocket.send", "text": "hello " * 20})
        await receive()

    assert _internals.share_deflate({"asgi.scope": {"type": "http"}}) is False
    async with serve(asgi_app, ws_per_message_deflate=deflate) as url:
        ws_url = url.replace("http", "ws", 1)
        async with websockets.asyncio.client.connect(ws_url, compression="deflate") as client:
            assert await client.recv() == "hello " * 20
            assert client.response is not None
            header = client.response.headers.get("Sec-WebSocket-Extensions")
        async with websockets.asyncio.client.connect(ws_url, compression=None) as client:
            assert await client.recv() == "hello " * 20
            assert client.response is not None
            assert "Sec-WebSocket-Extensions" not in client.response.headers
    if deflate:
        assert header == (
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=12; "
            "client_max_window_bits=12"
        )
        assert done == [True, False, False] + [False] * 3  # the client offering none: nothing
    else:
        assert header is None
        assert done == [False] * 6


# -- the versions tested ---------------------------------------------------------------------


def with_version(monkeypatch: pytest.MonkeyPatch, distribution: str, version: str | None) -> None:
    """Make `_internals` see `version` of `distribution` installed (`None`: not installed),
    and forget what it has logged."""
    installed = _internals.installed_version

    def fake(name: str) -> str | None:
        return version if name == distribution else installed(name)

    monkeypatch.setattr(_internals, "installed_version", fake)
    monkeypatch.setattr(_internals, "_reported", set())


def shouting_app() -> App:
    app = App()

    @app.route("shout")
    async def shout(req: Request) -> None:
        await req.join("all")
        for n in range(5):
            await app.room("all").broadcast("n", n)

    return app


async def shout(sio: socketio.AsyncServer) -> None:
    """Serve `sio`, and have one client receive five broadcasts."""
    async with serve(socketio.ASGIApp(sio)) as base, Client(base) as client:
        assert await client.call("shout") is None
        assert [(await client.receive()).data for _ in range(5)] == list(range(5))


@pytest.mark.parametrize(
    ("distribution", "version", "found"),
    [
        ("uvicorn", "0.34.3", "uvicorn 0.34.3 is installed (tested: >=0.35,<0.56)"),
        ("uvicorn", "0.56.0", "uvicorn 0.56.0 is installed (tested: >=0.35,<0.56)"),
        ("websockets", "18.0", "websockets 18.0 is installed (tested: >=13.1,<18)"),
        ("websockets", None, "websockets is not installed (tested: >=13.1,<18)"),
    ],
)
async def test_an_untested_uvicorn_or_websockets_turns_the_fast_path_off_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    distribution: str,
    version: str | None,
    found: str,
) -> None:
    with_version(monkeypatch, distribution, version)
    caplog.set_level(logging.WARNING, logger="roomcast")
    sio = socketio.AsyncServer(async_mode="asgi")
    transports = [attach(shouting_app(), sio), attach(App(), sio, namespace="/other")]
    transports.append(attach(App(), socketio.AsyncServer(async_mode="asgi")))
    for transport in transports:
        assert transport.fast_path is False
        assert transport.fast_path_off_reason == found
    assert [(r.name, r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            "roomcast",
            logging.WARNING,
            f"The Socket.IO fast path (direct websocket writes) is off: {found}. "
            "Broadcasts go through Engine.IO's queue.",
        )
    ]
    # Nothing of Engine.IO's is replaced, and every broadcast takes the queue.
    assert sio.eio.handlers["connect"] == sio._handle_eio_connect
    await shout(sio)
    assert transports[0].direct_writes == 0


async def test_with_the_installed_releases_the_fast_path_is_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="roomcast")
    for distribution in _internals.TESTED:
        assert _internals.installed_version(distribution) is not None, distribution
    sio = socketio.AsyncServer(async_mode="asgi")
    transport = attach(shouting_app(), sio)
    assert transport.fast_path is True
    assert transport.fast_path_off_reason is None
    assert caplog.records == []
    await shout(sio)
    assert transport.direct_writes > 0


@pytest.mark.parametrize(
    ("distribution", "version", "found"),
    [
        ("python-socketio", "5.11.2", "python-socketio 5.11.2 is installed"),
        ("python-socketio", "5.19.0", "python-socketio 5.19.0 is installed"),
        ("python-engineio", "4.16.0", "python-engineio 4.16.0 is installed"),
        ("python-engineio", None, "python-engineio is not installed"),
    ],
)
def test_an_untested_python_socketio_or_engineio_is_refused(
    monkeypatch: pytest.MonkeyPatch, distribution: str, version: str | None, found: str
) -> None:
    with_version(monkeypatch, distribution, version)
    sio = socketio.AsyncServer(async_mode="asgi")
    with pytest.raises(RuntimeError) as refused:
        attach(App(), sio)
    message = str(refused.value)
    assert found in message
    assert "python-socketio >=5.12,<5.19, python-engineio >=4.11,<4.16" in message
    # Refused before anything was registered or replaced.
    assert "_handle_event" not in vars(sio)
    assert sio.handlers == {}


def test_the_extras_carry_the_tested_bounds() -> None:
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    requirements = extras["socketio"] + extras["server"]
    for distribution, (low, high) in _internals.TESTED.items():
        (requirement,) = [r for r in requirements if re.match(rf"{distribution}\b(?!-)", r)]
        lower = re.search(r">=([\d.]+)", requirement)
        upper = re.search(r"<([\d.]+)", requirement)
        assert lower is not None, requirement
        assert upper is not None, requirement
        assert tuple(map(int, lower.group(1).split("."))) >= low, requirement
        assert tuple(map(int, upper.group(1).split("."))) == high, requirement


# -- what the adapter does -------------------------------------------------------------------


async def test_events_of_one_client_are_handled_in_order(app: App, url: str) -> None:
    order: list[int] = []

    @app.route("n")
    async def n(req: Request) -> None:
        await asyncio.sleep(0.002 * (req.data % 3))  # handlers that take unequal times
        order.append(req.data)

    async with Client(url) as client:
        for i in range(40):
            await client.emit("n", i)
        assert await client.call("n", 40) is None
    assert order == list(range(41))


async def test_the_ack_leaves_as_soon_as_the_handler_responds(app: App, url: str) -> None:
    release = asyncio.Event()

    @app.route("early")
    async def early(req: Request) -> None:
        await req.respond("right away")
        await release.wait()

    async with Client(url) as client:
        assert await client.call("early", timeout=2) == "right away"
        release.set()


async def test_binary_payloads(app: App, url: str) -> None:
    @app.route("file")
    async def file(req: Request) -> None:
        await app.room("files").broadcast("file", {"name": "a.bin", "chunk": req.data["chunk"]})

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join("files")

    async with Client(url) as alice, Client(url) as bob:
        await bob.call("join")
        await alice.emit("file", {"chunk": b"\x00\xff" * 10})
        msg = await bob.receive()
        assert msg.data == {"name": "a.bin", "chunk": b"\x00\xff" * 10}


async def test_several_arguments_arrive_as_a_list(app: App, url: str) -> None:
    @app.route("many")
    async def many(req: Request) -> Any:
        return req.data

    async with Client(url) as client:
        assert await client.sio.call("many", (1, "two", [3])) == [1, "two", [3]]
        assert await client.sio.call("many") is None


async def test_a_room_broadcast_encodes_once_and_spawns_no_task_per_receiver(
    app: App, sio: socketio.AsyncServer, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    encodes = 0
    tasks_during_broadcast = 0

    class CountingPacket(socketio.packet.Packet):  # type: ignore[misc]
        def encode(self) -> Any:
            nonlocal encodes
            encodes += 1
            return super().encode()

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join("big")

    @app.route("fanout")
    async def fanout(req: Request) -> None:
        nonlocal tasks_during_broadcast, encodes
        real_create_task = asyncio.create_task
        created = 0

        def counting_create_task(*args: Any, **kwargs: Any) -> Any:
            nonlocal created
            created += 1
            return real_create_task(*args, **kwargs)

        monkeypatch.setattr(sio, "packet_class", CountingPacket)
        monkeypatch.setattr(asyncio, "create_task", counting_create_task)
        encodes = 0
        await app.room("big").broadcast("hello", "all of you")
        monkeypatch.undo()
        tasks_during_broadcast = created

    clients = [Client(url) for _ in range(12)]
    for client in clients:
        await client.__aenter__()
    try:
        for client in clients:
            await client.call("join")
        await clients[0].emit("fanout")
        for client in clients:
            assert (await client.receive()).data == "all of you"
    finally:
        for client in clients:
            await client.__aexit__(None, None, None)
    assert encodes == 1
    assert tasks_during_broadcast == 0


async def test_server_side_disconnect(app: App, url: str) -> None:
    @app.route("join_and_leave")
    async def join_and_leave(req: Request) -> None:
        await req.join("room")
        await app.disconnect(req.sid)

    async with Client(url) as client:
        sid = client.sid
        await client.emit("join_and_leave")
        for _ in range(100):
            if not client.sio.connected:
                break
            await asyncio.sleep(0.02)
        assert not client.sio.connected
    assert await app.rooms_of(sid) == frozenset()
    assert app.connections == frozenset()


async def test_other_namespaces_are_left_alone(app: App) -> None:
    sio = socketio.AsyncServer(async_mode="asgi")
    transport = attach(app, sio, namespace="/rooms")
    assert isinstance(transport, SocketIOTransport)

    @sio.on("ping")  # type: ignore[untyped-decorator]
    async def ping(sid: str, data: Any) -> str:
        return f"pong {data}"

    @app.route("ping")
    async def room_ping(req: Request) -> str:
        return f"roomcast {req.data}"

    async with serve(socketio.ASGIApp(sio)) as base:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(base, namespaces=["/", "/rooms"], transports=["websocket"])
        try:
            assert await client.call("ping", 1, timeout=5) == "pong 1"
            assert await client.call("ping", 2, namespace="/rooms", timeout=5) == "roomcast 2"
        finally:
            await client.disconnect()


async def test_a_long_handler_does_not_stall_the_connection(app: App) -> None:
    # Engine.IO pings every second here and drops a client silent for a second more; the
    # handler runs for 4 s while the connection must keep answering pings.
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=1, ping_timeout=1)
    attach(app, sio)

    @app.route("slow")
    async def slow(req: Request) -> str:
        await asyncio.sleep(4)
        return "done"

    async with serve(socketio.ASGIApp(sio)) as base, Client(base) as client:
        assert await client.call("slow", timeout=8) == "done"
        assert client.sio.connected


async def test_on_connect_sees_the_http_request(app: App) -> None:
    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio)
    seen: dict[str, Any] = {}

    @app.on_connect
    async def look(req: Request) -> None:
        seen["header"] = req.environ.get("HTTP_X_TEAM")
        seen["query"] = req.environ.get("QUERY_STRING", "")

    async with serve(socketio.ASGIApp(sio)) as base:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(
            f"{base}?room=blue", headers={"X-Team": "red"}, transports=["websocket"]
        )
        await client.disconnect()
    assert seen["header"] == "red"
    assert "room=blue" in seen["query"]


async def test_canary_pending_binary(app: App, sio: socketio.AsyncServer, url: str) -> None:
    # python-socketio keeps an announced binary packet, by Engine.IO sid, until its
    # attachments have all come.
    assert isinstance(sio._binary_packet, dict)
    seen: list[Any] = []

    @app.route("probe")
    async def probe(req: Request) -> None:
        eio_sid = sio.manager.eio_sid_from_sid(req.sid, "/")
        seen.append(_internals.pending_binary(sio, eio_sid))
        sio._binary_packet[eio_sid] = "held"
        seen.append(_internals.pending_binary(sio, eio_sid))
        del sio._binary_packet[eio_sid]

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert seen == [None, "held"]


def test_canary_forget_binary() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    server._binary_packet["eio"] = "held"
    _internals.forget_binary(server, "eio")
    _internals.forget_binary(server, "eio")  # and again: nothing held, nothing raised
    assert "eio" not in server._binary_packet


async def test_canary_wrap_engineio_handler() -> None:
    # python-socketio registers its Engine.IO "message" and "disconnect" handlers on the
    # Engine.IO server, which looks them up in `handlers` for each message.
    server = socketio.AsyncServer(async_mode="asgi")
    assert server.eio.handlers["message"] == server._handle_eio_message
    assert server.eio.handlers["disconnect"] == server._handle_eio_disconnect
    seen: list[Any] = []

    def wrap(handle: Any) -> Any:
        async def message(eio_sid: str, data: Any) -> None:
            seen.append(data)
            await handle(eio_sid, data)

        return message

    _internals.wrap_engineio_handler(server, "message", wrap)
    server.on("ping", lambda sid, data: data)
    async with serve(socketio.ASGIApp(server)) as base, Client(base) as client:
        assert await client.call("ping", "x") == "x"
    assert any(isinstance(d, str) and '"ping"' in d for d in seen)


async def test_canary_engineio_socket_of(app: App, sio: socketio.AsyncServer, url: str) -> None:
    found: list[Any] = []

    @app.route("probe")
    async def probe(req: Request) -> None:
        eio_sid = sio.manager.eio_sid_from_sid(req.sid, "/")
        found.append(_internals.engineio_socket_of(sio, eio_sid))

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert isinstance(found[0], engineio.async_socket.AsyncSocket)
    assert _internals.engineio_socket_of(sio, "no such sid") is None


async def test_canary_end_writer() -> None:
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    a = engineio.packet.Packet(engineio.packet.MESSAGE, "a")
    socket.queue.put_nowait(a)
    _internals.end_writer(socket)
    assert await socket.poll() == [a]
    assert await socket.poll() == []  # the writer ends


async def test_canary_direct_write() -> None:
    socket = engineio.async_socket.AsyncSocket(engineio_server(), "sid")
    written: list[bytes] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def get_write_buffer_size(self) -> int:
            return 0

        def write(self, data: bytes) -> None:
            written.append(data)

    class Conn:
        state = "open"

    write = _internals.direct_write(socket, Conn(), Transport(), "open", 1024)
    assert write is not None
    assert write(b"a") is False  # no writer task waits on the queue
    waiting = asyncio.ensure_future(socket.queue.get())
    await anyio.wait_all_tasks_blocked()  # the getter is now parked on the queue
    assert write(b"b") is True
    socket.queue.put_nowait("pending")  # the getter is served: it holds a packet now
    assert write(b"c") is False
    assert await waiting == "pending"
    assert written == [b"b"]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_canary_refuse_off_asyncio() -> None:
    # python-socketio's ASGI app hands every Engine.IO request to the server's handle_request.
    source = inspect.getsource(engineio.async_drivers.asgi.ASGIApp.__call__)
    assert "self.engineio_server.handle_request(" in source
    server = socketio.AsyncServer(async_mode="asgi")
    attach(App(), server)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/socket.io/",
        "query_string": b"EIO=4&transport=polling",
        "headers": [],
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    # Under trio: refused at once, saying why, instead of failing deep in python-engineio.
    with pytest.raises(RuntimeError, match="runs on asyncio only"):
        await socketio.ASGIApp(server)(scope, receive, send)


@pytest.mark.parametrize("transports", [("websocket",), ("polling",)])
async def test_what_connect_hooks_send_follows_the_connect_reply(
    transports: tuple[str, ...],
) -> None:
    app = App()

    @app.on_connect
    async def welcome(req: Request) -> None:
        await req.emit("welcome", "hello")
        await app.room("lobby").broadcast("lobby", "someone came")  # none yet: nobody
        await req.join("lobby")
        await app.room("lobby").broadcast("lobby", "you are in")

    # A short ping interval: a long-polling client's disconnect waits for its pending poll.
    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=0.5, ping_timeout=1)
    attach(app, sio)
    seen: list[str] = []
    both = asyncio.Event()
    client = socketio.AsyncClient()

    @client.event
    async def connect() -> None:
        seen.append("connect")

    @client.on("*")
    async def anything(event: str, data: Any) -> None:
        seen.append(f"{event}: {data}")
        if len(seen) == 3:
            both.set()

    async with serve(socketio.ASGIApp(sio)) as base:
        await client.connect(base, transports=list(transports))
        try:
            await asyncio.wait_for(both.wait(), 5)
        finally:
            await client.disconnect()
    assert seen == ["connect", "welcome: hello", "lobby: you are in"]


# -- the server's calls --------------------------------------------------------------------------


async def test_canary_expect_ack() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    answers: list[tuple[Any, ...]] = []
    ack_id = _internals.expect_ack(server, "s1", lambda *args: answers.append(args))
    assert server.manager.callbacks["s1"][ack_id] is not None
    await server.manager.trigger_callback("s1", ack_id, ["a", 2])
    assert answers == [("a", 2)]
    assert ack_id not in server.manager.callbacks["s1"]  # python-socketio forgot it
    _, _, text = _internals.event_packets(server, "/", ["q", 1], ack_id)
    assert text == f'42{ack_id}["q",1]'


def test_canary_forget_ack() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    ack_id = _internals.expect_ack(server, "s1", lambda *args: None)
    _internals.forget_ack(server, "s1", ack_id)
    assert ack_id not in server.manager.callbacks["s1"]
    _internals.forget_ack(server, "s1", ack_id)  # twice: nothing
    _internals.forget_ack(server, "never-seen", 1)


async def test_the_server_calls_a_python_socketio_client(
    app: App, sio: socketio.AsyncServer, url: str
) -> None:
    client = socketio.AsyncClient(reconnection=False)  # handles only what it names
    client.on("sum", lambda data: data["a"] + data["b"])
    client.on("pair", lambda data: (data, data))  # several values: a list
    client.on("nothing", lambda: None)

    @client.on("unanswered")
    async def unanswered() -> None:
        await asyncio.Event().wait()  # (python-socketio's client answers once handled)

    await client.connect(url, transports=["websocket"])
    sid = client.get_sid()
    assert sid is not None
    try:
        assert await app.call(sid, "sum", {"a": 2, "b": 3}) == 5
        assert await app.call(sid, "pair", "x") == ["x", "x"]
        assert await app.call(sid, "nothing") is None
        # A client that does not answer: TimeoutError, and nothing is kept for it after.
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await app.call(sid, "unanswered", timeout=0.1)
        callbacks = sio.manager.callbacks[sid]
        assert [key for key in callbacks if key != 0] == []
        assert not app.hub.index.connections[sid].calls
    finally:
        await client.disconnect()
    # python-socketio forgets what it kept for a connection when it closes.
    for _ in range(100):
        if sid not in sio.manager.callbacks:
            break
        await asyncio.sleep(0.02)
    assert sid not in sio.manager.callbacks


async def test_a_call_ends_with_connection_closed_when_the_client_goes(app: App, url: str) -> None:
    async with Client(url) as client:

        @client.sio.on("wait")
        async def wait() -> None:
            await asyncio.Event().wait()  # an answer that never comes

        sid = client.sid
        call = asyncio.ensure_future(app.call(sid, "wait", timeout=30))
        await asyncio.sleep(0.2)
        await client.disconnect()
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(call, 5)
    with pytest.raises(ConnectionClosed):
        await app.call(sid, "gone")


# -- connection-state recovery -------------------------------------------------------------------


async def test_canary_replace_connect_handler(app: App, url: str) -> None:
    params = list(inspect.signature(socketio.AsyncServer._handle_connect).parameters)
    assert params == ["self", "eio_sid", "namespace", "data"]
    server = socketio.AsyncServer(async_mode="asgi")
    seen: list[tuple[str, Any]] = []

    async def handle(connect: Any, eio_sid: str, namespace: str, data: Any) -> None:
        seen.append((namespace, data))
        await connect(eio_sid, namespace, {"changed": True})

    server.on("connect", lambda sid, environ, auth: seen.append(("hook", auth)))
    _internals.replace_connect_handler(server, "/", handle)
    async with serve(socketio.ASGIApp(server)) as base:
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(base, transports=["websocket"], auth={"a": 1})
        await client.disconnect()
    assert seen == [("/", {"a": 1}), ("hook", {"changed": True})]


async def test_canary_replace_pre_connect() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    assert inspect.iscoroutinefunction(server.manager.pre_connect)
    assert list(inspect.signature(server.manager.pre_connect).parameters) == [
        "eio_sid",
        "namespace",
    ]
    made: list[str | None] = []

    async def pre_connect(next_: Any, eio_sid: str, namespace: str) -> str | None:
        sid = await next_(eio_sid, namespace)
        made.append(sid)
        return sid

    _internals.replace_pre_connect(server, pre_connect)
    async with serve(socketio.ASGIApp(server)) as base:
        server.on("connect", lambda sid, environ: None)
        client = socketio.AsyncClient(reconnection=False)
        await client.connect(base, transports=["websocket"])
        sid = client.get_sid()
        await client.disconnect()
    assert made == [sid]


async def test_canary_pre_connect_with_sid() -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    sid = await _internals.pre_connect_with_sid(
        server, server.manager.pre_connect, "eio1", "/", "the old sid"
    )
    assert sid == "the old sid"
    assert server.manager.sid_from_eio_sid("eio1", "/") == "the old sid"
    assert "generate_id" not in vars(server.eio)  # the engine's own again
    assert server.eio.generate_id() != "the old sid"


async def test_canary_add_to_connect_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    server = socketio.AsyncServer(async_mode="asgi")
    sent: list[Any] = []

    async def send(eio_sid: str, data: Any) -> None:
        sent.append(data)

    monkeypatch.setattr(server.eio, "send", send)
    _internals.add_to_connect_reply(server, "/", lambda sid: {"pid": f"pid of {sid}"})
    packet = socketio.packet.Packet
    await server._send_packet("e", packet(socketio.packet.CONNECT, {"sid": "s1"}, namespace="/"))
    await server._send_packet("e", packet(socketio.packet.CONNECT, {"sid": "s2"}, namespace="/x"))
    await server._send_packet("e", packet(socketio.packet.EVENT, ["a", {"sid": "s3"}]))
    assert sent == ['0{"sid":"s1","pid":"pid of s1"}', '0/x,{"sid":"s2"}', '2["a",{"sid":"s3"}]']

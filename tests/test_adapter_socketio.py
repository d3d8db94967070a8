"""What only the python-socketio adapter does; the shared table is in test_semantics.py."""

from __future__ import annotations

import asyncio
import collections
import inspect
from collections.abc import AsyncIterator
from typing import Any

import engineio.async_server
import engineio.async_socket
import engineio.packet
import pytest
import socketio
import websockets.protocol
import websockets.server
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from roomcast import App, Request
from roomcast.adapters._direct import text_frame
from roomcast.adapters.socketio import SocketIOTransport, attach

from .servers import Client, serve


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


def test_the_internals_relied_on_are_there() -> None:
    """The adapter leans on these python-socketio and python-engineio internals (and, for
    the fast path, on uvicorn's and websockets'); a release that changes one must fail here
    before it fails users."""
    params = list(inspect.signature(socketio.AsyncServer._handle_event).parameters)
    assert params == ["self", "eio_sid", "namespace", "id", "data"]
    assert inspect.iscoroutinefunction(socketio.AsyncServer._send_packet)
    assert list(inspect.signature(socketio.AsyncServer._send_packet).parameters) == [
        "self",
        "eio_sid",
        "pkt",
    ]
    server = socketio.AsyncServer(async_mode="asgi")
    assert server.packet_class is socketio.packet.Packet
    assert callable(server.manager.eio_sid_from_sid)
    assert callable(server.manager.sid_from_eio_sid)
    # Engine.IO: each socket's outgoing queue, and closing a socket without waiting on it.
    assert isinstance(server.eio.sockets, dict)
    eio_socket = engineio.async_socket.AsyncSocket(server.eio, "sid")
    assert isinstance(eio_socket.queue, asyncio.Queue)
    assert eio_socket.closed is False
    close = inspect.signature(engineio.async_socket.AsyncSocket.close).parameters
    assert {"wait", "abort", "reason"} <= set(close)
    # The fast path (_direct.py): a socket's transport and closing flags, the queue's waiters,
    # and what websockets' sans-I/O protocol says of a connection.
    assert eio_socket.upgraded is False
    assert eio_socket.closing is False
    # A long-polling socket upgrades through `_upgrade_websocket(environ)`, looked up on the
    # socket by name for each websocket request, so wrapping it on the socket takes effect.
    upgrade = engineio.async_socket.AsyncSocket._upgrade_websocket
    assert inspect.iscoroutinefunction(upgrade)
    assert list(inspect.signature(upgrade).parameters) == ["self", "environ"]
    assert "getattr(self, '_upgrade_' + transport)(environ)" in inspect.getsource(
        engineio.async_socket.AsyncSocket.handle_get_request
    )
    # ...and a new socket is in `eio.sockets` when Engine.IO's connect handler runs for it.
    assert server.eio.handlers["connect"] == server._handle_eio_connect
    connect = inspect.getsource(engineio.async_server.AsyncServer._handle_connect)
    assert connect.index("self.sockets[sid] = s") < connect.index("_trigger_event('connect'")
    assert isinstance(eio_socket.queue._getters, collections.deque)
    assert websockets.protocol.Protocol(websockets.protocol.SERVER).extensions == []
    assert websockets.protocol.State.OPEN.name == "OPEN"
    assert issubclass(websockets.server.ServerProtocol, websockets.protocol.Protocol)
    assert inspect.iscoroutinefunction(WebSocketsSansIOProtocol.send)


async def test_the_internals_of_the_fast_path_are_there(
    app: App, sio: socketio.AsyncServer, url: str
) -> None:
    """What `_direct.py` reads of a live connection, served by uvicorn's websockets-sansio
    protocol as `serve` does. Were one to change, the fast path would fall back to the queue
    silently (test_adapter_direct.py counts it), or worse, write out of order."""
    environs: dict[str, Any] = {}
    facts: dict[str, Any] = {}

    @app.on_connect
    async def remember(req: Request) -> None:
        environs[req.sid] = req.environ

    @app.route("probe")
    async def probe(req: Request) -> None:
        # python-engineio's ASGI environ: the websocket scope, and the server's `send`.
        environ = environs[req.sid]
        facts["scope"] = environ["asgi.scope"]["type"]
        protocol = environ["asgi.send"].__self__
        facts["protocol"] = type(protocol)
        facts["conn"] = type(protocol.conn)
        facts["state"] = protocol.conn.state
        facts["extensions"] = protocol.conn.extensions
        facts["transport"] = isinstance(protocol.transport, asyncio.Transport)
        # python-engineio: a websocket socket whose idle writer task waits on the queue, and
        # is woken (its waiter gone) by a packet put on it.
        socket = sio.eio.sockets[sio.manager.eio_sid_from_sid(req.sid, "/")]
        facts["upgraded"] = socket.upgraded
        getters = socket.queue._getters
        facts["idle writer waits"] = len(getters) == 1 and not getters[0].done()
        socket.queue.put_nowait(engineio.packet.Packet(engineio.packet.NOOP))
        facts["woken writer gone"] = not getters
        # uvicorn: `send` has written the frame to the transport by the time it returns, the
        # same bytes as `text_frame` (recorded by a stand-in for the transport, put back at
        # once).
        recording = _Recording(protocol.transport)
        protocol.transport = recording
        try:
            await environ["asgi.send"]({"type": "websocket.send", "text": "6"})
        finally:
            protocol.transport = recording.inner
        facts["written"] = recording.written

    async with Client(url) as client:
        assert await client.call("probe") is None
    assert facts == {
        "scope": "websocket",
        "protocol": WebSocketsSansIOProtocol,
        "conn": websockets.server.ServerProtocol,
        "state": websockets.protocol.State.OPEN,
        "extensions": [],
        "transport": True,
        "upgraded": True,
        "idle writer waits": True,
        "woken writer gone": True,
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

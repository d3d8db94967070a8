"""The fast path (`roomcast.adapters._direct`): broadcasts written straight to websockets,
never out of order, and only where that is known to be safe."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
import socketio
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode

from roomcast import App, ConnectionRejected, Limits, Reject, Request
from roomcast.adapters._direct import MAX_BUFFERED, text_frame
from roomcast.adapters.socketio import SocketIOTransport, attach
from roomcast.testing import Message

from .needs import missing
from .servers import ROOT, Client, RawClient, serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # python-socketio runs on asyncio only


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65_535, 65_536, 100_000])
def test_a_text_frame_is_what_websockets_sends(size: int) -> None:
    for text in ("x" * size, "é" * (size // 2)):  # the length is in bytes, not characters
        assert text_frame(text) == Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


def flood_app(count: int) -> tuple[App, socketio.AsyncServer, SocketIOTransport]:
    """An app whose `flood` sends `count` broadcasts (0, 1, ...) to room `r` at once."""
    app = App(limits=Limits(rate=None))

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join("r")

    @app.route("flood")
    async def flood(req: Request) -> None:
        for n in range(count):
            await app.room("r").broadcast("n", n)

    sio = socketio.AsyncServer(async_mode="asgi")
    return app, sio, attach(app, sio)


async def test_most_deliveries_of_a_flood_are_written_directly() -> None:
    count, clients = 200, 10
    _, sio, transport = flood_app(count)
    async with serve(socketio.ASGIApp(sio)) as url, AsyncExitStack() as stack:
        readers = [await stack.enter_async_context(RawClient(url)) for _ in range(clients)]
        for reader in readers:
            assert await reader.call("join") is None
        await readers[0].emit("flood")
        for reader in readers:
            assert [(await reader.receive())[2] for _ in range(count)] == list(range(count))
    assert transport.direct_writes >= 0.9 * count * clients


async def test_clients_that_start_on_long_polling_get_the_fast_path_once_upgraded() -> None:
    # What browsers' clients do by default: connect over long-polling, then upgrade.
    count, clients = 200, 5
    _, sio, transport = flood_app(count)
    async with serve(socketio.ASGIApp(sio)) as url, AsyncExitStack() as stack:
        readers = [
            await stack.enter_async_context(Client(url, transports=("polling", "websocket")))
            for _ in range(clients)
        ]
        for reader in readers:
            assert await reader.call("join") is None
            for _ in range(200):
                if reader.sio.transport() == "websocket":
                    break
                await asyncio.sleep(0.01)
            assert reader.sio.transport() == "websocket"
        await readers[0].emit("flood")
        for reader in readers:
            assert [(await reader.receive()).data for _ in range(count)] == list(range(count))
        await sio.eio.disconnect()
    assert transport.direct_writes >= 0.9 * count * clients


def _raw(compression: str | None) -> Callable[[str], Any]:
    return lambda url: RawClient(url, compression=compression)


def _polling(*transports: str) -> Callable[[str], Any]:
    return lambda url: Client(url, transports=transports)


@pytest.mark.parametrize(
    ("ws", "client", "direct"),
    [
        pytest.param("websockets-sansio", _raw(None), True, id="websockets-sansio"),
        pytest.param("websockets-sansio", _raw("deflate"), False, id="per-message-deflate"),
        pytest.param("wsproto", _raw(None), False, id="uvicorn-wsproto"),
        pytest.param("websockets-sansio", _polling("polling"), False, id="long-polling"),
        pytest.param("websockets-sansio", _polling("polling", "websocket"), True, id="upgraded"),
    ],
)
async def test_the_fast_path_is_taken_only_where_it_is_known_to_be_safe(
    ws: str, client: Callable[[str], Any], direct: bool
) -> None:
    # Few: python-engineio's own client drops a long-polling connection whose poll brings
    # some thirty packets at once ("Unexpected packet from server"), whatever the server.
    count = 10
    _, sio, transport = flood_app(count)
    async with serve(socketio.ASGIApp(sio), ws=ws) as url, client(url) as reader:
        assert await reader.call("join") is None
        await reader.emit("flood")
        received = []
        for _ in range(count):
            msg = await reader.receive()
            received.append(msg.data if isinstance(msg, Message) else msg[2])
        assert received == list(range(count))
        # Close every Engine.IO connection from the server's side: python-engineio's
        # long-polling client takes long to leave on its own.
        await sio.eio.disconnect()
    if direct:
        assert transport.direct_writes >= 0.8 * count
    else:
        assert transport.direct_writes == 0


async def test_a_writer_is_forgotten_with_its_connection() -> None:
    app, sio, transport = flood_app(0)

    @app.on_connect
    async def refuse(req: Request) -> None:
        if req.data == "no":
            raise Reject("no")

    async with serve(socketio.ASGIApp(sio)) as url:
        async with RawClient(url) as a, RawClient(url) as b:
            assert set(transport._peers) == {a.sid, b.sid}
            peers = list(transport._peers.values())
            assert all(peer.writer is not None for peer in peers)
        for _ in range(100):
            if not transport._peers:
                break
            await asyncio.sleep(0.02)
        assert transport._peers == {}
        assert all(peer.writer is None for peer in peers)
        with pytest.raises(ConnectionRejected):
            async with Client(url, auth="no"):
                pass
        assert transport._peers == {}


MIXES = 30
BROADCASTS = 10
FLOOD = 300
PAD = "x" * 20_000  # enough, with slow readers, for transports to fill and writers to block


async def test_every_packet_to_a_client_arrives_in_the_order_it_was_produced() -> None:
    """Emits, broadcasts, acknowledgements and Engine.IO pings to one client, from two
    connections at once, with readers slow enough that transports fill up and the Engine.IO
    writer blocks with packets in hand: each client gets each producer's packets in order."""
    app = App(limits=Limits(rate=None, max_queued=None, max_queued_bytes=None))

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join("r")

    @app.route("mix")
    async def mix(req: Request) -> None:
        n = req.data
        await req.emit("mine", f"emit {n}")
        for k in range(BROADCASTS):
            await app.room("r").broadcast("mine", {"b": f"{n}.{k}", "pad": PAD})
        await req.respond(f"ack {n}")  # through the queue: wakes the writer
        await app.room("r").broadcast("mine", f"after {n}")

    @app.route("flood")
    async def flood(req: Request) -> None:
        for k in range(FLOOD):
            await app.room("r").broadcast("flood", {"k": k, "pad": PAD})
            if k % 10 == 0:
                await asyncio.sleep(0)  # let the mixes in between

    sio = socketio.AsyncServer(async_mode="asgi", ping_interval=0.1, ping_timeout=20)
    transport = attach(app, sio)

    def short(item: tuple[str, Any, Any]) -> tuple[str, Any, Any]:
        kind, name, data = item
        return kind, name, data["b"] if isinstance(data, dict) else data

    expected: list[tuple[str, Any, Any]] = []
    for n in range(MIXES):
        expected.append(("event", "mine", f"emit {n}"))
        expected += [("event", "mine", f"{n}.{k}") for k in range(BROADCASTS)]
        expected.append(("ack", n, f"ack {n}"))
        expected.append(("event", "mine", f"after {n}"))

    async def read(client: RawClient, total: int) -> tuple[list[Any], list[int]]:
        mine, floods = [], []
        while len(mine) + len(floods) < total:
            item = await client.receive(timeout=20)
            if item[1] == "flood":
                floods.append(item[2]["k"])
            else:
                mine.append(short(item))
            if len(mine) % 8 == 0:
                await asyncio.sleep(0.002)  # a slow reader
        return mine, floods

    async with (
        serve(socketio.ASGIApp(sio)) as url,
        RawClient(url) as mixer,
        RawClient(url) as other,
        RawClient(url) as flooder,
    ):
        for client in (mixer, other):
            assert await client.call("join") is None
        await flooder.emit("flood")
        for n in range(MIXES):
            await mixer.emit("mix", n, ack_id=n)
        (mixed, mixer_floods), (seen, other_floods) = await asyncio.gather(
            read(mixer, len(expected) + FLOOD),
            read(other, MIXES * (BROADCASTS + 1) + FLOOD),
        )
    assert mixed == expected
    assert seen == [item for item in expected if item[0] == "event" and "emit" not in item[2]]
    assert mixer_floods == other_floods == list(range(FLOOD))
    # Both paths were taken: the fast one, and the queue while the writer was busy.
    assert 0 < transport.direct_writes < 2 * FLOOD + MIXES * (2 * BROADCASTS + 3)


@pytest.mark.skipif(
    not hasattr(WebSocketsSansIOProtocol, "pause_writing"),
    reason="uvicorn < 0.53 never pauses writing, so its writer never holds a packet",
)
async def test_a_broadcast_never_overtakes_a_packet_the_writer_holds() -> None:
    """The prototype's hole, made on purpose: the Engine.IO writer took an acknowledgement off
    the queue and waits, in uvicorn's `send`, for a paused transport, so the queue is empty
    and the transport's buffer under `MAX_BUFFERED`: the broadcast after it must still queue
    up behind it."""
    app = App(limits=Limits(rate=None, max_queued=None, max_queued_bytes=None))
    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio)
    protocols: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    ready = asyncio.Event()

    @app.on_connect
    async def remember(req: Request) -> None:
        protocol = req.environ["asgi.send"].__self__
        # uvicorn pauses writing past 16 kB, well under MAX_BUFFERED.
        protocol.transport.set_write_buffer_limits(high=16 * 1024)
        protocols[req.sid] = protocol

    @app.route("probe")
    async def probe(req: Request) -> None:
        await req.join("r")
        protocol, k = protocols[req.sid], 0
        while protocol.writable.is_set() and k < 20_000:  # the client reads nothing
            await app.room("r").broadcast("pad", {"k": k, "pad": "x" * 4096})
            k += 1
            if k % 8 == 0:
                await asyncio.sleep(0.001)  # let the transport flush into the kernel
        facts["pads"] = k
        await req.respond("ack")  # through the queue
        queue = sio.eio.sockets[sio.manager.eio_sid_from_sid(req.sid, "/")].queue
        # The writer takes it and waits for the paused transport: wait until it holds it.
        with anyio.move_on_after(5):
            while not (queue.empty() and not queue._getters):  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        facts["writer holds the ack"] = queue.empty() and not queue._getters
        facts["buffer under MAX_BUFFERED"] = protocol.transport.get_write_buffer_size() < (
            MAX_BUFFERED
        )
        await app.room("r").broadcast("after", "the ack")
        ready.set()

    async with serve(socketio.ASGIApp(sio)) as url, RawClient(url, max_queue=1) as client:
        await client.emit("probe", ack_id=7)
        await asyncio.wait_for(ready.wait(), 20)
        assert facts["writer holds the ack"]
        assert facts["buffer under MAX_BUFFERED"]
        received = [await client.receive(timeout=10) for _ in range(facts["pads"] + 2)]
    assert [data["k"] for _, _, data in received[:-2]] == list(range(facts["pads"]))
    assert received[-2:] == [("ack", 7, "ack"), ("event", "after", "the ack")]


CHROMIUM = Path("/usr/bin/chromium")
SOCKETIO_CLIENT = ROOT / "examples/basic_chat/node_modules/socket.io-client/dist/socket.io.min.js"


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists() or not SOCKETIO_CLIENT.exists():
        missing("needs Chromium and the example's Node packages (scripts/bootstrap --tests)")
    return CHROMIUM


@pytest.mark.browser
async def test_a_browser_on_the_example_page_gets_the_fast_path(chromium: Path) -> None:
    """Chromium's Socket.IO client, as the example page loads it, starts on long-polling and
    upgrades; served as the example serves itself, its broadcasts are then written directly."""
    from playwright.async_api import async_playwright

    from examples.basic_chat.app import create_app, create_asgi_app

    app = create_app()
    count = 50
    options = {"ws_per_message_deflate": False}  # as `python -m examples.basic_chat` runs
    async with serve(create_asgi_app(app), **options) as url, async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox"], headless=True
        )
        try:
            pages = []
            for _ in range(2):
                # The example's policy forbids eval, which Playwright's evaluate relies on.
                context = await browser.new_context(bypass_csp=True)
                page = await context.new_page()
                await page.goto(url + "/")
                await page.evaluate(JOIN)
                await page.wait_for_function(UPGRADED, timeout=10_000)
                pages.append(page)
            for i in range(count):
                await pages[0].evaluate(SEND, f"m{i}")
            await pages[1].wait_for_function(f"window.got.length >= {count}", timeout=10_000)
            got = await pages[1].evaluate("window.got")
            (transport,) = {c.transport for c in app.hub.index.connections.values()}
        finally:
            await browser.close()
    assert got == [f"m{i}" for i in range(count)]
    assert isinstance(transport, SocketIOTransport)
    # Both pages receive each message: at least 90% of those deliveries went direct.
    assert transport.direct_writes >= 0.9 * 2 * count


JOIN = """() => new Promise(resolve => {
    window.got = [];
    const socket = window.probe = io();  // the client's defaults: long-polling first
    socket.on("message", m => window.got.push(m.message));
    socket.on("connect", () => socket.emit("ready", "fast", resolve));
})"""
UPGRADED = "window.probe.io.engine.transport.name === 'websocket'"
SEND = """text => new Promise(resolve =>
    window.probe.emit("send", {room: "fast", author: "a", message: text}, resolve))"""

"""The fast path (`roomcast.adapters._direct`): broadcasts written straight to websockets,
never out of order, and only where that is known to be safe."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import zlib
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest
import socketio
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.server import ServerProtocol
from websockets.streams import StreamReader
from websockets.typing import ExtensionParameter

from roomcast import App, ConnectionRejected, Limits, Reject, Request
from roomcast.adapters import _internals
from roomcast.adapters._direct import MAX_BUFFERED, Frames, text_frame
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


def _parse(frame: bytes, extension: Extension | None = None) -> Frame:
    """`frame` parsed as a websocket client parses what a server sends (websockets' own
    parser), through `extension` (such as per-message deflate) when given."""
    reader = StreamReader()
    reader.feed_data(frame)
    reader.feed_eof()
    parser = Frame.parse(
        reader.read_exact, mask=False, extensions=None if extension is None else [extension]
    )
    try:
        next(parser)
    except StopIteration as done:
        parsed: Frame = done.value
        return parsed
    raise AssertionError("an incomplete frame")


def _client_deflate(bits: int) -> PerMessageDeflate:
    """A client's per-message deflate after a server chose server_no_context_takeover and a
    window of `bits`."""
    return PerMessageDeflate(True, False, bits, 15)


def _inflate_within(data: bytes, bits: int) -> bytes:
    """The raw deflate `data` inflated with a window of `bits`, strictly: fed a byte at a
    time, so that a back-reference farther than that window fails (inflating all at once
    reaches back into its own output, whatever the window)."""
    inflater, out = zlib.decompressobj(-bits), []
    for k in range(len(data)):
        out.append(inflater.decompress(data[k : k + 1]))
    return b"".join(out)


def _repeated() -> str:
    """Random text repeated 1,000 characters apart: beyond a 512-byte window (9 bits), so that
    a frame made with a larger window than its receiver's does not inflate there."""
    rng = random.Random(7)
    return "".join(rng.choice("abcdefghij") for _ in range(1_000)) * 3


REPEATED = _repeated()
TEXTS = [
    "",
    "42",
    '42["n",1]',
    '42["message",{"message":"' + "hello " * 30 + '"}]',
    REPEATED,
    "é" * 40_000,  # past 65,535 bytes before compression
]


@pytest.mark.parametrize("bits", [9, 12, 15])
def test_one_compressed_frame_decodes_for_every_receiver_with_that_window(bits: int) -> None:
    for text in TEXTS:
        frames = Frames(text)
        frame = frames[bits]
        assert frames[bits] is frame  # compressed once
        parsed = _parse(frame, _client_deflate(bits))
        assert (parsed.opcode, parsed.fin, parsed.data) == (Opcode.TEXT, True, text.encode())
        if frame[0] & 0x40:  # RSV1: compressed, and then smaller
            assert len(frame) < len(frames[0])
            length = frame[1] & 0x7F  # the payload as sent: after the header
            compressed = frame[{126: 4, 127: 10}.get(length, 2) :]
            assert _inflate_within(compressed + b"\x00\x00\xff\xff", bits) == text.encode()
        else:
            assert frame is frames[0]
    # What compresses is sent compressed; what does not, plain.
    assert Frames("hello " * 30)[bits][0] == 0xC1
    assert Frames('42["n",1]')[bits] == text_frame('42["n",1]')


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
        pytest.param("websockets-sansio", _raw("deflate"), True, id="per-message-deflate"),
        pytest.param("wsproto", _raw(None), False, id="uvicorn-wsproto"),
        pytest.param("websockets-sansio", _polling("polling"), False, id="long-polling"),
        pytest.param("websockets-sansio", _polling("polling", "websocket"), True, id="upgraded"),
    ],
)
async def test_the_fast_path_is_taken_only_where_it_is_known_to_be_safe(
    ws: str,
    client: Callable[[str], Any],
    direct: bool,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_internals, "_reported", set())
    caplog.set_level(logging.WARNING, logger="roomcast")
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
    # Only a setup that can never have it says so: not a client still on long-polling.
    said = [record.getMessage() for record in caplog.records if "fast path" in record.message]
    assert said == (WSPROTO_SAYS if ws == "wsproto" else [])


WSPROTO_SAYS = [
    "The Socket.IO fast path (direct websocket writes) is off for websockets where "
    "uvicorn.protocols.websockets.wsproto_impl.WSProtocol serves them, not uvicorn's "
    "websockets-sansio protocol (uvicorn ws='websockets-sansio', or ws='auto' with websockets "
    "installed). Broadcasts to them go through Engine.IO's queue."
]


async def test_a_server_setup_without_the_fast_path_says_why_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_internals, "_reported", set())
    caplog.set_level(logging.WARNING, logger="roomcast")
    _, sio, transport = flood_app(1)
    async with serve(socketio.ASGIApp(sio), ws="wsproto") as url:
        for _ in range(3):
            async with RawClient(url) as client:
                assert await client.call("join") is None
                await client.emit("flood")
                assert await client.receive() == ("event", "n", 0)
    said = [record.getMessage() for record in caplog.records if "fast path" in record.message]
    assert said == WSPROTO_SAYS
    assert transport.direct_writes == 0


async def test_python_engineio_aiohttp_mode_says_why_it_has_no_fast_path(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiohttp import web

    monkeypatch.setattr(_internals, "_reported", set())
    caplog.set_level(logging.WARNING, logger="roomcast")
    app = App(limits=Limits(rate=None))
    sio = socketio.AsyncServer(async_mode="aiohttp")
    transport = attach(app, sio)
    web_app = web.Application()
    sio.attach(web_app)
    runner = web.AppRunner(web_app)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    await web.SockSite(runner, sock).start()
    try:
        for _ in range(2):
            async with RawClient(f"http://127.0.0.1:{port}") as client:
                answer = await client.call("nothing")
                assert answer["error"]["code"] == "unknown_event"
    finally:
        await runner.cleanup()
    said = [record.getMessage() for record in caplog.records if "fast path" in record.message]
    assert said == [
        "The Socket.IO fast path (direct websocket writes) is off for websockets where a server "
        "that is not ASGI (such as python-engineio's aiohttp mode) serves them, not uvicorn's "
        "websockets-sansio protocol (uvicorn ws='websockets-sansio', or ws='auto' with "
        "websockets installed). Broadcasts to them go through Engine.IO's queue."
    ]
    assert transport.direct_writes == 0


OFFERS = [
    "permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=10; client_no_context_takeover",
    "permessage-deflate; server_no_context_takeover",
    "permessage-deflate; server_max_window_bits=8",  # below what zlib can compress with
    "permessage-deflate; server_max_window_bits",  # a value is required
    "permessage-deflate; foo=bar",
    "x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=9, permessage-deflate",
    "permessage-deflate; client_max_window_bits=99",
    "permessage-deflate;;; =, ,",
]


def _answer(head: bytes) -> tuple[int, str | None]:
    """The status and `Sec-WebSocket-Extensions` of an HTTP response's head."""
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines if ": " in line)
    return int(status.split()[1]), headers.get("Sec-WebSocket-Extensions")


@pytest.mark.parametrize("offer", OFFERS)
async def test_any_offer_is_answered_as_websockets_answers_it_without_server_context(
    offer: str,
) -> None:
    """Whatever a client offers, the answer is websockets' own for uvicorn's parameters with
    `server_no_context_takeover` added, or uvicorn's refusal, as before: a hostile offer
    changes nothing else."""
    request = (
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Extensions: {offer}\r\n\r\n"
    ).encode("latin-1")
    conn = ServerProtocol(
        extensions=[
            ServerPerMessageDeflateFactory(
                server_no_context_takeover=True,
                server_max_window_bits=12,
                client_max_window_bits=12,
                compress_settings={"memLevel": 5},
            )
        ]
    )
    conn.receive_data(request)
    (parsed,) = conn.events_received()
    expected = conn.accept(parsed)
    _, sio, _ = flood_app(0)
    async with serve(socketio.ASGIApp(sio)) as url:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(url.rsplit(":", 1)[1]))
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        if expected.status_code == 101:  # Engine.IO's open packet: a text frame
            assert (await asyncio.wait_for(reader.readexactly(2), 5))[0] & 0x0F == 0x1
        writer.close()
    assert _answer(head) == (
        expected.status_code,
        expected.headers.get("Sec-WebSocket-Extensions"),
    )


class _Strict(PerMessageDeflate):
    """A client's per-message deflate that records, for each text message from the server,
    whether it came compressed, and inflates it strictly within the window negotiated."""

    compressed: list[bool]

    def decode(self, frame: Frame, *, max_size: int | None = None) -> Frame:
        decoded = super().decode(frame, max_size=max_size)
        if frame.opcode is Opcode.TEXT:
            self.compressed.append(frame.rsv1)
            if frame.rsv1:
                inflated = _inflate_within(
                    bytes(frame.data) + b"\x00\x00\xff\xff", self.remote_max_window_bits
                )
                assert inflated == decoded.data
        return decoded


class _Deflate(ClientPerMessageDeflateFactory):
    """What websockets' client offers with `compression="deflate"`, and further `params`;
    what it negotiates decodes through `_Strict`, into `compressed`."""

    def __init__(self, **params: Any) -> None:
        super().__init__(client_max_window_bits=True, **params)
        self.compressed: list[bool] = []

    def process_response_params(
        self, params: Sequence[ExtensionParameter], accepted_extensions: Sequence[Extension]
    ) -> PerMessageDeflate:
        chosen = super().process_response_params(params, accepted_extensions)
        strict = _Strict(
            chosen.remote_no_context_takeover,
            chosen.local_no_context_takeover,
            chosen.remote_max_window_bits,
            chosen.local_max_window_bits,
            chosen.compress_settings,
        )
        strict.compressed = self.compressed
        return strict


def _negotiated(client: RawClient) -> dict[str, str | None] | None:
    """The parameters of per-message deflate in the server's handshake response, or `None`."""
    assert client.ws.response is not None
    header = client.ws.response.headers.get("Sec-WebSocket-Extensions")
    if header is None:
        return None
    name, *params = (part.strip() for part in header.split(";"))
    assert name == "permessage-deflate"
    return {key: value or None for key, _, value in (p.partition("=") for p in params)}


async def test_per_message_deflate_as_uvicorn_offers_it_takes_the_fast_path(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn's defaults (`ws="auto"`, per-message deflate offered): clients that accept
    deflate with uvicorn's window, or with a smaller one they ask for, and one that offers
    none, in one room. Every broadcast goes straight to each, compressed once per window."""
    monkeypatch.setattr(_internals, "_reported", set())
    caplog.set_level(logging.WARNING, logger="roomcast")
    count = 20
    text = REPEATED  # beyond the smaller window
    app, sio, transport = flood_app(0)

    @app.route("texts")
    async def texts(req: Request) -> None:
        for n in range(count):
            await app.room("r").broadcast("n", {"n": n, "text": text})
        await req.respond("done")  # through the queue, compressed by websockets itself

    offers = [_Deflate(), _Deflate(server_max_window_bits=9)]
    async with serve(socketio.ASGIApp(sio), ws="auto") as url, AsyncExitStack() as stack:
        readers = [
            await stack.enter_async_context(RawClient(url, extensions=[offer])) for offer in offers
        ]
        readers.append(await stack.enter_async_context(RawClient(url)))
        assert [_negotiated(reader) for reader in readers] == [
            # uvicorn's parameters, and the server's context never taken over
            {
                "server_no_context_takeover": None,
                "server_max_window_bits": "12",
                "client_max_window_bits": "12",
            },
            {
                "server_no_context_takeover": None,
                "server_max_window_bits": "9",
                "client_max_window_bits": "12",
            },
            None,
        ]
        for reader in readers:
            assert await reader.call("join") is None
        await readers[0].emit("texts", ack_id=1)
        for reader in readers:
            got = [await reader.receive() for _ in range(count)]
            assert got == [("event", "n", {"n": n, "text": text}) for n in range(count)]
        assert await readers[0].receive() == ("ack", 1, "done")
    assert transport.direct_writes >= 0.9 * 3 * count
    for offer in offers:
        assert offer.compressed.count(True) >= count + 1  # the broadcasts and the ack
    assert [record for record in caplog.records if "fast path" in record.message] == []


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


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_every_packet_to_a_client_arrives_in_the_order_it_was_produced(
    compression: str | None,
) -> None:
    """Emits, broadcasts, acknowledgements and Engine.IO pings to one client, from two
    connections at once, with readers slow enough that transports fill up and the Engine.IO
    writer blocks with packets in hand: each client gets each producer's packets in order.
    With per-message deflate too: what websockets compresses for the queue and what is
    written directly interleave."""
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
        RawClient(url, compression) as mixer,
        RawClient(url, compression) as other,
        RawClient(url, compression) as flooder,
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
    upgrades, accepting the per-message deflate uvicorn offers by default; served as the
    example serves itself, its broadcasts are then written directly, and arrive whole."""
    from playwright.async_api import async_playwright

    from examples.basic_chat.app import create_app, create_asgi_app

    app = create_app()
    count = 50
    # As `python -m examples.basic_chat` runs: uvicorn's defaults.
    async with serve(create_asgi_app(app), ws="auto") as url, async_playwright() as playwright:
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
            (transport,) = {c.transport for c in app.hub.index.connections.values()}
            assert isinstance(transport, SocketIOTransport)
            # Chromium took uvicorn's per-message deflate, without server context takeover.
            windows = [p.writer and p.writer.window for p in transport._peers.values()]
            # Long enough that the broadcasts go compressed.
            sent = [f"m{i} " + "chat " * 40 for i in range(count)]
            for text in sent:
                await pages[0].evaluate(SEND, text)
            await pages[1].wait_for_function(f"window.got.length >= {count}", timeout=10_000)
            got = await pages[1].evaluate("window.got")
        finally:
            await browser.close()
    assert windows == [12] * 4  # each page's own socket, and its probe
    assert Frames(sent[0])[12][0] == 0xC1  # RSV1: compressed
    assert got == sent
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

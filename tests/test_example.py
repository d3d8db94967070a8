"""examples/basic_chat: its routes, its page's assets and its one command.

The route tests run three ways: through `TestClient` (on asyncio and on trio) and through real
python-socketio clients against the example's own ASGI app under uvicorn.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from examples.basic_chat import __main__ as command
from examples.basic_chat.app import SOCKETIO_CLIENT, create_app, create_asgi_app
from roomcast import App

from .needs import missing
from .transports import Connect, anyio_backend, connect, setup  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
PICTURE = "data:image/jpeg;base64,/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDA=="


def require_socketio_client() -> None:
    """Skip when `npm ci` has not run; on CI (``CI=true``) fail instead, so nothing hides."""
    if SOCKETIO_CLIENT.is_file():
        return
    missing(f"{SOCKETIO_CLIENT} is missing; run: npm ci --prefix examples/basic_chat")


@pytest.fixture
def app() -> App:
    return create_app()


@pytest.fixture
def asgi_app(app: App) -> Any:
    return create_asgi_app(app)


async def nothing_for(client: Any) -> None:
    try:
        msg = await client.receive(timeout=0.2)
    except TimeoutError:
        return
    pytest.fail(f"unexpected {msg!r}")


async def received(client: Any) -> tuple[str, Any]:
    msg = await client.receive(timeout=2.0)
    return msg.event, msg.data


def send(message: Any = "Hello", **fields: Any) -> dict[str, Any]:
    return {"room": "chat", "author": "Alice", "message": message, **fields}


def signal(kind: Any = "SDP", message: Any = '{"sdp": "v=0"}', **fields: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "room": "signal", **fields}


def files(filesize: Any = 1234, **fields: Any) -> dict[str, Any]:
    return {"filename": "notes.txt", "filesize": filesize, "room": "files", **fields}


ROOMS = {"chat_room": "chat", "signal_room": "signal", "files_room": "files"}


async def ready(data: Any, *clients: Any) -> None:
    """Each client joins with `ready`, in turn; the announcements of the arrivals are read."""
    for client in clients:
        await client.call("ready", data)
    for i, client in enumerate(clients):
        for _ in clients[i:]:
            assert (await client.receive(timeout=2.0)).event == "announce"


# -- ready ------------------------------------------------------------------------------------


async def test_ready_announces_each_newcomer_to_the_room_sender_included(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        announce = ("announce", {"message": "New client in the chat room."})
        await alice.emit("ready", "chat")
        assert await received(alice) == announce
        await bob.emit("ready", "chat")
        assert await received(alice) == announce
        assert await received(bob) == announce
        await carol.emit("ready", "lobby")
        assert await received(carol) == ("announce", {"message": "New client in the lobby room."})
        await nothing_for(alice)
        await nothing_for(bob)


async def test_ready_with_three_rooms_joins_them_all(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await alice.call("ready", ROOMS)
        assert await received(alice) == ("announce", {"message": "New client in the chat room."})
        await ready(ROOMS, bob)
        await alice.receive(timeout=2.0)  # Bob's arrival
        await alice.emit("send", send())
        await alice.emit("signal", signal())
        await alice.emit("files", files())
        assert await received(bob) == ("message", {"message": "Hello", "author": "Alice"})
        assert await received(bob) == (
            "signaling_message",
            {"type": "SDP", "message": '{"sdp": "v=0"}'},
        )
        assert await received(bob) == ("files", {"filename": "notes.txt", "filesize": 1234})


# -- send -------------------------------------------------------------------------------------


async def test_send_reaches_everyone_in_the_room_sender_included(connect: Connect) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await ready("chat", alice, bob)
        await ready("lobby", carol)
        await bob.emit("send", send("Hi <b>all</b>", author="Bob"))
        for client in (alice, bob):
            assert await received(client) == (
                "message",
                {"message": "Hi <b>all</b>", "author": "Bob"},
            )
        await nothing_for(carol)


async def test_send_carries_the_authors_profile_picture(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await ready("chat", alice, bob)
        await alice.emit("send", send(picture=PICTURE))
        assert await received(bob) == (
            "message",
            {"message": "Hello", "author": "Alice", "picture": PICTURE},
        )
        await alice.emit("send", send("no picture", picture=None))
        assert await received(bob) == ("message", {"message": "no picture", "author": "Alice"})


async def test_a_message_may_be_2000_characters(connect: Connect) -> None:
    async with connect() as alice:
        await ready("chat", alice)
        await alice.emit("send", send("é" * 2000))
        assert await received(alice) == ("message", {"message": "é" * 2000, "author": "Alice"})


# -- signal and files -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["user_here", "SDP", "ice candidate"])
async def test_signal_reaches_the_others_in_the_room_not_the_sender(
    connect: Connect, kind: str
) -> None:
    async with connect() as alice, connect() as bob, connect() as carol:
        await ready(ROOMS, alice, bob)
        await ready({"chat_room": "lobby", "signal_room": "call", "files_room": "x"}, carol)
        await alice.emit("signal", signal(kind, '{"from": "a"}'))
        assert await received(bob) == (
            "signaling_message",
            {"type": kind, "message": '{"from": "a"}'},
        )
        await nothing_for(alice)
        await nothing_for(carol)


async def test_files_reaches_the_others_in_the_room_not_the_sender(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await ready(ROOMS, alice, bob)
        await alice.emit("files", files(0, filename="empty.bin"))
        assert await received(bob) == ("files", {"filename": "empty.bin", "filesize": 0})
        await nothing_for(alice)


# -- who is here (presence) ---------------------------------------------------------------------


async def up_to_announce(client: Any) -> dict[tuple[str, str], Any]:
    """Read what a client gets up to its `announce`: each presence event by (event, room)."""
    got: dict[tuple[str, str], Any] = {}
    while (message := await received(client))[0] != "announce":
        event, data = message
        assert (event, data["room"]) not in got, f"a second {event} of {data['room']!r}"
        got[event, data["room"]] = data
    return got


def present(data: dict[str, Any], **expected: list[str]) -> None:
    """`data` holds, under each sid given, metas with those names and a "ref" each."""
    assert {key: [meta["name"] for meta in metas] for key, metas in data.items()} == expected
    for metas in data.values():
        for meta in metas:
            assert set(meta) == {"name", "ref"}
            assert isinstance(meta["ref"], str)


async def test_ready_with_a_name_shows_who_is_here(connect: Connect) -> None:
    async with connect() as alice, connect() as bob:
        await alice.call("ready", {**ROOMS, "name": "Alice"})
        got = await up_to_announce(alice)
        # In each room, the newcomer gets the state, itself in it, and the diff of its join.
        assert set(got) == {
            (e, r) for e in ("presence_state", "presence_diff") for r in ROOMS.values()
        }
        alices = {}
        for room in ROOMS.values():
            state = got["presence_state", room]["presences"]
            present(state, **{alice.sid: ["Alice"]})
            alices[room] = state[alice.sid]
            assert got["presence_diff", room] == {
                "room": room,
                "joins": {alice.sid: alices[room]},
                "leaves": {},
            }

        await bob.call("ready", {**ROOMS, "name": "Bob <b>"})
        got = await up_to_announce(bob)
        bobs = {}
        for room in ROOMS.values():
            state = got["presence_state", room]["presences"]
            present(state, **{alice.sid: ["Alice"], bob.sid: ["Bob <b>"]})
            assert state[alice.sid] == alices[room]
            bobs[room] = state[bob.sid]
        # The others get the diff of the join, in each room, then the announce.
        got = await up_to_announce(alice)
        assert got == {
            ("presence_diff", room): {"room": room, "joins": {bob.sid: bobs[room]}, "leaves": {}}
            for room in ROOMS.values()
        }
        await nothing_for(alice)

        # Disconnecting untracks: the others get the diff of the leave, in each room.
        bob_sid = bob.sid  # a socket.io client has none once disconnected
        await bob.disconnect()
        diffs = [await received(alice) for _ in ROOMS]
        assert sorted(diffs, key=lambda diff: diff[1]["room"]) == [
            ("presence_diff", {"room": room, "joins": {}, "leaves": {bob_sid: bobs[room]}})
            for room in sorted(ROOMS.values())
        ]
        await nothing_for(alice)


async def test_the_rooms_presence_lists_the_names(connect: Connect, app: App) -> None:
    async with connect() as alice, connect() as bob, connect() as carol, connect() as dave:
        await alice.call("ready", {**ROOMS, "name": "Alice"})
        await bob.call("ready", {**ROOMS, "name": "Bob"})
        await carol.call("ready", ROOMS)  # no name, as before: a member, not present
        await dave.call("ready", "chat")
        for room in ROOMS.values():
            present(await app.room(room).presence(), **{alice.sid: ["Alice"], bob.sid: ["Bob"]})
        assert await app.room("chat").members() == {alice.sid, bob.sid, carol.sid, dave.sid}


async def test_name_names_the_nameless_and_renames(connect: Connect, app: App) -> None:
    async with connect() as alice, connect() as bob:
        await alice.call("ready", {**ROOMS, "name": "Alice"})
        await up_to_announce(alice)
        await bob.call("ready", ROOMS)  # without a name: not present, no state
        assert await up_to_announce(bob) == {}
        assert await up_to_announce(alice) == {}
        alices = {room: (await app.room(room).presence())[alice.sid] for room in ROOMS.values()}

        # Bob takes a name: his first track in each room, so he gets each room's state.
        await bob.call("name", {"name": "Bob"})
        got = {}
        for _ in range(2 * len(ROOMS)):
            event, data = await received(bob)
            got[event, data["room"]] = data
        for room in ROOMS.values():
            state = got["presence_state", room]["presences"]
            present(state, **{alice.sid: ["Alice"], bob.sid: ["Bob"]})
            assert got["presence_diff", room]["joins"] == {bob.sid: state[bob.sid]}
        for _ in ROOMS:
            event, data = await received(alice)
            assert event == "presence_diff"
            present(data["joins"], **{bob.sid: ["Bob"]})

        # Alice renames herself: in each room, a leave of her old meta and a join of the new.
        await alice.call("name", {"name": "Ann"})
        for client in (alice, bob):
            for _ in ROOMS:
                event, data = await received(client)
                assert event == "presence_diff"
                assert data["leaves"] == {alice.sid: alices[data["room"]]}
                present(data["joins"], **{alice.sid: ["Ann"]})
        for room in ROOMS.values():
            present(await app.room(room).presence(), **{alice.sid: ["Ann"], bob.sid: ["Bob"]})
        await nothing_for(alice)
        await nothing_for(bob)


# -- bad input ----------------------------------------------------------------------------------

INVALID = [
    ("ready", {"chat_room": "chat", "signal_room": "signal"}, "'files_room' is missing"),
    ("ready", {**ROOMS, "chat_room": ["chat"]}, "'chat_room' must be of type str"),
    ("ready", {**ROOMS, "name": ""}, "'name' is empty"),
    ("ready", {**ROOMS, "name": ["Alice"]}, "'name' must be of type str"),
    ("ready", {**ROOMS, "name": "x" * 2001}, "'name' is longer than 2000 characters"),
    ("name", "Alice", "expected an object"),
    ("name", {"name": " "}, "'name' is empty"),
    ("send", "Hello", "expected an object"),
    ("send", {"room": "chat", "author": "Alice"}, "'message' is missing"),
    ("send", send(""), "'message' is empty"),
    ("send", send(" \n "), "'message' is empty"),
    ("send", send("x" * 2001), "'message' is longer than 2000 characters"),
    ("send", send(42), "'message' must be of type str"),
    ("send", send(author=""), "'author' is empty"),
    ("send", send(author=None), "'author' must be of type str"),
    ("send", send(room=7), "'room' must be of type str"),
    ("send", send(picture="javascript:alert(1)"), "'picture' must be a base64 data:image/ URL"),
    ("send", send(picture="data:image/svg+xml;base64,PHN2Zz4="), "'picture' must be a base64"),
    ("send", send(picture=PICTURE + "A" * 64 * 1024), "'picture' is longer than 65536"),
    ("signal", signal("hello"), "'type' must be one of: SDP, ice candidate, user_here"),
    ("signal", signal(message={"sdp": "v=0"}), "'message' must be of type str"),
    ("signal", signal(message="x" * (64 * 1024 + 1)), "'message' is longer than 65536"),
    ("signal", {"type": "SDP", "message": "{}"}, "'room' is missing"),
    ("files", files(-1), "'filesize' is negative"),
    ("files", files("12"), "'filesize' must be of type int"),
    ("files", files(True), "'filesize' must be of type int"),
    ("files", files(1.5), "'filesize' must be of type int"),
    ("files", files(filename=""), "'filename' is empty"),
]


@pytest.mark.parametrize(("event", "data", "reason"), INVALID)
async def test_bad_input_gets_invalid_payload_and_the_chat_goes_on(
    connect: Connect, event: str, data: Any, reason: str
) -> None:
    async with connect() as alice, connect() as bob:
        await ready(ROOMS, bob)
        reply = await alice.call(event, data, timeout=2.0)
        assert reply["error"]["code"] == "invalid_payload"
        assert reason in reply["error"]["message"]
        await nothing_for(bob)  # nothing went out
        await alice.emit("send", send("still here"))  # the connection stays open
        assert await received(bob) == ("message", {"message": "still here", "author": "Alice"})


async def test_bad_input_without_an_ack_gets_the_error_event(connect: Connect) -> None:
    async with connect() as alice:
        await alice.emit("send", send(""))
        assert await received(alice) == (
            "error",
            {"code": "invalid_payload", "message": "'message' is empty", "event": "send"},
        )


@pytest.mark.parametrize("data", ["", 42, None, "x" * 257, {**ROOMS, "signal_room": "x" * 257}])
async def test_a_bad_room_name_gets_invalid_room(connect: Connect, data: Any) -> None:
    async with connect() as alice:
        reply = await alice.call("ready", data, timeout=2.0)
        assert reply["error"]["code"] == "invalid_room"


# -- the page's assets and the one command ------------------------------------------------------


async def http_get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """GET `path` exactly as written (no `..` folding, as a hostile client would send it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    if headers.get("transfer-encoding") == "chunked":
        body = dechunk(body)
    return int(status_line.split()[1]), headers, body


def dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out, body = out + body[:size], body[size + 2 :]


class TestServing:
    """The example serves its page, the page's assets and the socket.io client, and no more."""

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"  # uvicorn and python-socketio

    @pytest.fixture
    async def url(self) -> AsyncIterator[str]:
        from .servers import serve

        async with serve(create_asgi_app(create_app())) as url:
            yield url

    async def test_cross_site_socket_connections_are_refused(self, url: str) -> None:
        from websockets.asyncio.client import connect
        from websockets.exceptions import InvalidStatus

        endpoint = url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket"
        # A page of another site may not open a Socket.IO connection to the chat ...
        with pytest.raises(InvalidStatus) as refused:
            async with connect(endpoint, origin="http://evil.example"):  # type: ignore[arg-type]
                pass
        assert refused.value.response.status_code == 403
        # ... while the chat's own page may.
        async with connect(endpoint, origin=url) as ws:  # type: ignore[arg-type]
            assert str(await ws.recv()).startswith("0")  # Engine.IO's open packet

    async def test_the_page(self, url: str) -> None:
        status, headers, body = await http_get(url, "/")
        assert (status, headers["content-type"]) == (200, "text/html")
        page = body.decode()
        for element in ('id="chat"', 'id="camera"', 'id="call"', 'id="snapshot-button"'):
            assert element in page
        # Everything the page loads comes from this server: no CDN.
        assert 'src="/vendor/socket.io.min.js"' in page
        for link in re.findall(r'(?:src|href)="([^"]*)"', page):
            assert link.startswith(("/", "data:")), link
            assert not link.startswith("//"), link

    @pytest.mark.parametrize(
        ("path", "content_type"),
        [("/static/app.js", "application/javascript"), ("/static/style.css", "text/css")],
    )
    async def test_the_assets(self, url: str, path: str, content_type: str) -> None:
        status, headers, body = await http_get(url, path)
        assert (status, headers["content-type"]) == (200, content_type)
        assert body == (ROOT / "examples/basic_chat" / path.lstrip("/")).read_bytes()

    async def test_the_official_socketio_client(self, url: str) -> None:
        require_socketio_client()
        status, headers, body = await http_get(url, "/vendor/socket.io.min.js")
        assert (status, headers["content-type"]) == (200, "application/javascript")
        assert body.startswith(b"/*!\n * Socket.IO v4.8.")

    @pytest.mark.parametrize(
        "path",
        ["/app.py", "/static/../app.py", "/static/%2e%2e/app.py", "/vendor/", "/node_modules/"],
    )
    async def test_nothing_else(self, url: str, path: str) -> None:
        status, _, body = await http_get(url, path)
        assert status == 404
        assert b"create_app" not in body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_one_command_runs_the_example(tmp_path: Path) -> None:
    require_socketio_client()
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    with (
        log,
        subprocess.Popen(
            [sys.executable, "-m", "examples.basic_chat", "--port", str(port)],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        ) as proc,
    ):
        try:
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
                        assert b'id="chat"' in r.read()
                        break
                except OSError:
                    assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                    time.sleep(0.1)
        finally:
            proc.terminate()
    assert f"open http://127.0.0.1:{port}/" in (tmp_path / "server.log").read_text()


def test_the_command_says_how_to_get_the_socketio_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(command, "SOCKETIO_CLIENT", tmp_path / "socket.io.min.js")
    with pytest.raises(SystemExit, match=r"npm ci --prefix examples/basic_chat"):
        command.main(["--port", "0"])


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_example_serves_its_metrics() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from .servers import ROOT, Client, run_example

    require_socketio_client()
    with run_example(ROOT / "artifacts" / "basic_chat-metrics.log") as (url, _):
        async with Client(url) as client:
            await client.call("ready", "metrics room")

            def fetch() -> str:
                with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
                    assert response.status == 200
                    return str(response.read().decode())

            text = await asyncio.to_thread(fetch)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert samples[("roomcast_connections", ())] == 1
    assert samples[("roomcast_rooms", ())] == 1
    assert samples[("roomcast_events_total", (("event", "ready"), ("outcome", "ok")))] == 1
    assert samples[("roomcast_deliveries_total", ())] >= 1

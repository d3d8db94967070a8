"""Connection-state recovery over Socket.IO, with the official socket.io-client (Node)."""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio

from roomcast import App, Limits, Request
from roomcast._message import Outgoing, Target
from roomcast._recovery import Recovery
from roomcast.adapters.socketio import SocketIOTransport, attach
from roomcast.backends import Backend
from roomcast.backends.redis import RedisBackend
from roomcast.testing import TestClient

from .needs import missing
from .redis_support import REDIS_URL, drop_prefix, fresh_prefix, require_redis
from .servers import ROOT, serve

DRIVER = ROOT / "tests" / "recovery_client.js"
CLIENT = ROOT / "examples/basic_chat/node_modules/socket.io-client"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # python-socketio runs on asyncio only


class NodeClient:
    """tests/recovery_client.js in a Node process: what it printed, and what to tell it."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.seen: list[dict[str, Any]] = []
        self._n = 0

    async def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next line of `kind` it printed (the others are kept in `seen`)."""
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise EOFError("the Node client exited")
                message: dict[str, Any] = json.loads(line)
                self.seen.append(message)
                if message["type"] == kind:
                    return message

    async def events(self, count: int) -> list[tuple[str, list[Any]]]:
        """The next `count` events, as (event, args)."""
        return [
            (message["event"], message["args"])
            for message in [await self.next("event") for _ in range(count)]
        ]

    def tell(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")

    async def call(self, event: str, data: Any = None) -> Any:
        self._n += 1
        self.tell(cmd="emit", n=self._n, event=event, data=data)
        return (await self.next("ack")).get("value")  # none: undefined, left out


@asynccontextmanager
async def node_client(url: str, **options: Any) -> AsyncIterator[NodeClient]:
    node = shutil.which("node")
    if node is None or not CLIENT.exists():
        missing("Node and the example's socket.io-client (scripts/bootstrap installs them)")
    process = await asyncio.create_subprocess_exec(
        str(node),
        str(DRIVER),
        url,
        json.dumps(options),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        yield NodeClient(process)
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


GONE: dict[str, asyncio.Event] = {}


def make_app(backend: Backend | None = None, limits: Limits | None = None) -> App:
    app = App(backend=backend, limits=limits)

    @app.on_disconnect
    async def bye(req: Request) -> None:
        GONE.setdefault(req.sid, asyncio.Event()).set()

    @app.on_connect
    async def hello(req: Request) -> None:
        if not req.recovered:
            req.session["first auth"] = req.data
        req.session.setdefault("connects", []).append(req.recovered)

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    @app.route("whoami")
    async def whoami(req: Request) -> dict[str, Any]:
        return {"sid": req.sid, "rooms": sorted(req.rooms), "session": req.session}

    return app


@asynccontextmanager
async def server(app: App, recovery: float = 30.0) -> AsyncIterator[tuple[str, SocketIOTransport]]:
    sio = socketio.AsyncServer(async_mode="asgi")
    transport = attach(app, sio, recovery=recovery)
    async with serve(socketio.ASGIApp(sio)) as url:
        yield url, transport


async def gone(app: App, sid: str) -> None:
    """Wait until the app has seen the connection `sid` drop."""
    async with asyncio.timeout(5):
        await GONE.setdefault(sid, asyncio.Event()).wait()
    del GONE[sid]


async def test_a_dropped_client_gets_back_its_sid_rooms_session_and_what_it_missed() -> None:
    app = make_app()
    async with (
        server(app) as (url, transport),
        node_client(url, reconnectionDelay=300, auth={"token": "t"}) as client,
    ):
        first = await client.next("connect")
        assert first["recovered"] is False
        sid = first["id"]
        assert await client.call("join", "r") is None
        await app.room("r").broadcast("m", 1)
        ((event, args),) = await client.events(1)
        assert event == "m"
        assert args[0] == 1
        assert isinstance(args[-1], str)  # the offset, last, as Socket.IO sends it

        client.tell(cmd="drop")
        await gone(app, sid)
        # While it is away: a room broadcast, one to everyone, one to it alone, and ones
        # it would not have received.
        await app.room("r").broadcast("m", 2)
        await app.broadcast("all", 3)
        await app.emit(sid, "direct", 4)
        await app.room("elsewhere").broadcast("m", "not for it")
        await app.emit("someone else", "direct", "not for it either")

        back = await client.next("connect")
        assert back == {**back, "id": sid, "recovered": True, "pid": first["pid"]}
        missed = await client.events(3)
        assert [(event, args[:-1]) for event, args in missed] == [
            ("m", [2]),
            ("all", [3]),
            ("direct", [4]),
        ]
        offsets = [args[-1] for _, args in missed]
        assert len(set(offsets)) == 3
        me = await client.call("whoami")
        assert me["sid"] == sid
        assert me["rooms"] == ["r"]
        assert me["session"] == {"first auth": {"token": "t"}, "connects": [False, True]}
        await app.room("r").broadcast("m", 5)  # and it goes on as before
        assert [(e, args[:-1]) for e, args in await client.events(1)] == [("m", [5])]
        assert not [m for m in client.seen if m.get("args", [None])[:1] == ["not for it"]]
    assert transport.recovery is not None


async def test_what_a_silently_dead_connection_was_sent_is_replayed() -> None:
    app = make_app()
    async with server(app) as (url, _), node_client(url, reconnectionDelay=300) as client:
        sid = (await client.next("connect"))["id"]
        await client.call("join", "r")
        client.tell(cmd="cut", ms=500)  # it stops reading; then its connection closes
        await asyncio.sleep(0.1)
        for n in range(5):  # written to the socket, never read
            await app.room("r").broadcast("m", n)
        await gone(app, sid)
        back = await client.next("connect")
        assert back["recovered"] is True
        assert [(e, args[:-1]) for e, args in await client.events(5)] == [
            ("m", [n]) for n in range(5)
        ]


async def test_an_explicit_disconnect_is_not_recovered() -> None:
    app = make_app()
    async with server(app) as (url, _), node_client(url) as client:
        first = await client.next("connect")
        await client.call("join", "r")
        client.tell(cmd="reconnect")
        back = await client.next("connect")
        assert back["recovered"] is False
        assert back["id"] != first["id"]
        assert (await client.call("whoami"))["rooms"] == []


async def test_a_connection_the_server_closed_is_not_recovered() -> None:
    app = make_app()
    async with server(app) as (url, _), node_client(url) as client:
        first = await client.next("connect")
        await client.call("join", "r")
        await app.disconnect(first["id"])
        assert (await client.next("disconnect"))["reason"] == "io server disconnect"
        client.tell(cmd="connect")  # it comes back with its private id and offset
        back = await client.next("connect")
        assert back["recovered"] is False
        assert back["id"] != first["id"]
        assert (await client.call("whoami"))["rooms"] == []


async def test_a_slow_consumer_shed_by_the_server_is_not_recovered() -> None:
    app = make_app(limits=Limits(max_queued=5))
    async with server(app) as (url, _), node_client(url, reconnectionDelay=300) as client:
        first = await client.next("connect")
        await client.call("join", "r")
        client.tell(cmd="cut", ms=1500)  # it stops reading
        await asyncio.sleep(0.1)
        # Far more than the kernel's socket buffers (a few MB on loopback), its transport and
        # its queue hold, compressed or not (per-message deflate: the client offers it, and
        # uvicorn accepts it), so that it is shed.
        incompressible = secrets.token_urlsafe(20_000)
        for _ in range(1_000):
            await app.room("r").broadcast("m", incompressible)
        await gone(app, first["id"])
        assert app.stats.slow_consumers_disconnected == 1
        back = await client.next("connect")
        assert back["recovered"] is False
        assert back["id"] != first["id"]


async def test_past_the_window_a_client_connects_afresh() -> None:
    app = make_app()
    async with (
        server(app, recovery=0.2) as (url, _),
        node_client(url, reconnectionDelay=600, reconnectionDelayMax=600) as client,
    ):
        first = await client.next("connect")
        await client.call("join", "r")
        client.tell(cmd="drop")
        back = await client.next("connect")
        assert back["recovered"] is False
        assert back["id"] != first["id"]
        assert back["pid"] != first["pid"]


async def test_a_forged_or_reused_private_id_gives_nothing_back() -> None:
    app = make_app()
    async with server(app) as (url, _), node_client(url, reconnectionDelay=300) as victim:
        first = await victim.next("connect")
        await victim.call("join", "secret room")
        await app.room("secret room").broadcast("m", "secret")
        offset = (await victim.next("event"))["args"][-1]
        victim.tell(cmd="drop")
        assert (await victim.next("connect"))["recovered"] is True  # its one use
        for pid, at in [
            (first["pid"], offset),  # reused
            ("x" * 22, offset),  # forged
            (first["pid"][:-1] + "A", offset),
            (None, None),
            ({"not": "a string"}, offset),
            ("p" * 100_000, offset),  # too long to be looked up
        ]:
            attacker = socketio.AsyncClient(reconnection=False)
            await attacker.connect(
                url, transports=["websocket"], auth={"pid": pid, "offset": at, "me": 1}
            )
            try:
                assert attacker.get_sid() != first["id"]
                me = await attacker.call("whoami", timeout=5)
                assert me["rooms"] == []
                assert me["session"]["first auth"] == {"me": 1}  # pid and offset taken out
            finally:
                await attacker.disconnect()


async def test_an_offset_the_log_no_longer_reaches_gives_a_fresh_connection() -> None:
    app = make_app()
    async with server(app) as (url, transport):
        assert transport.recovery is not None
        transport.recovery.max_entries = 3
        async with node_client(url, reconnectionDelay=300) as client:
            first = await client.next("connect")
            await client.call("join", "r")
            await app.room("r").broadcast("m", 0)
            await client.next("event")
            client.tell(cmd="drop")
            await gone(app, first["id"])
            for n in range(5):  # more than the log keeps
                await app.room("r").broadcast("m", n)
            back = await client.next("connect")
            assert back["recovered"] is False
            assert back["id"] != first["id"]


async def test_the_fast_path_stays_on_with_recovery() -> None:
    app = make_app()
    # socket.io-client's defaults: per-message deflate offered, and accepted by uvicorn.
    async with server(app) as (url, transport), node_client(url) as client:
        await client.next("connect")
        await client.call("join", "r")
        for n in range(20):
            await app.room("r").broadcast("m", n)
        events = await client.events(20)
        assert [args[0] for _, args in events] == list(range(20))
        assert transport.direct_writes > 0


async def test_a_client_recovers_through_another_process() -> None:
    """With Redis, a client that drops from one process and comes back to another (as a load
    balancer may send it) recovers there: its sid, rooms, session, and what it missed on
    either process, in the order the first one saw it."""
    require_redis()
    prefix = fresh_prefix()
    one, two = (
        make_app(RedisBackend(REDIS_URL, prefix=prefix)),
        make_app(RedisBackend(REDIS_URL, prefix=prefix)),
    )
    try:
        async with (
            one,
            two,
            server(one) as (url_one, _),
            server(two) as (url_two, _),
            node_client(url_one, reconnectionDelay=300, auth={"token": "t"}) as client,
            TestClient(one) as watcher,
        ):
            await watcher.call("join", "r")  # sees what the first process receives
            first = await client.next("connect")
            sid = first["id"]
            await client.call("join", "r")
            await two.room("r").broadcast("m", 0)  # through Redis
            assert [(e, args[:-1]) for e, args in await client.events(1)] == [("m", [0])]

            client.tell(cmd="drop", to=url_two)
            await gone(one, sid)
            await one.room("r").broadcast("m", 1)  # on the process it dropped from
            await two.room("r").broadcast("m", 2)  # on the other, through Redis
            assert [(await watcher.receive("m")).data for _ in range(3)] == [0, 1, 2]
            await one.emit(sid, "direct", 3)

            back = await client.next("connect")
            assert back["recovered"] is True
            assert back["id"] == sid
            assert back["pid"] == first["pid"]
            assert [(e, args[:-1]) for e, args in await client.events(3)] == [
                ("m", [1]),
                ("m", [2]),
                ("direct", [3]),
            ]
            me = await client.call("whoami")
            assert me["sid"] == sid
            assert me["rooms"] == ["r"]
            assert me["session"] == {"first auth": {"token": "t"}, "connects": [False, True]}
            assert sid in two.connections
            assert await one.room("r").members() == {sid, watcher.sid}
            await one.room("r").broadcast("m", 4)  # it goes on, from either process
            assert [(e, args[:-1]) for e, args in await client.events(1)] == [("m", [4])]
            # Dropped again, from the second process, it recovers there too.
            client.tell(cmd="drop")
            await gone(two, sid)
            await one.room("r").broadcast("m", 5)
            again = await client.next("connect")
            assert again["recovered"] is True
            assert [(e, args[:-1]) for e, args in await client.events(1)] == [("m", [5])]
    finally:
        drop_prefix(prefix)


# -- the log and the absent, bounded -------------------------------------------------------


def recovery(**options: Any) -> tuple[Recovery, list[float]]:
    now = [0.0]
    return Recovery(10.0, lambda message: 100, clock=lambda: now[0], **options), now


def test_the_log_is_bounded_in_entries_bytes_and_time() -> None:
    log, now = recovery(max_entries=5, max_bytes=350)
    for n in range(10):
        log.record(Target(), Outgoing("e", n))
    assert log.logged == 3  # 350 bytes hold three of 100
    assert log.log_bytes == 300
    now[0] = 11.0
    log.record(Target(), Outgoing("e", "late"))
    assert log.logged == 1


def test_absent_connections_are_bounded_in_count_bytes_and_time() -> None:
    log, now = recovery(max_absent=3, max_absent_bytes=10_000)
    for n in range(5):
        log.dropped(f"sid{n}", f"pid{n}", frozenset({"r"}), {}, 0)
    assert log.absent == 3
    assert log.claim("pid0", None) is None  # the oldest went first
    log.dropped("big", "pid-big", frozenset(f"room{n:04}" for n in range(2000)), {}, 0)
    assert log.absent_bytes <= 10_000
    now[0] = 11.0
    assert log.claim("pid4", None) is None  # expired
    assert log.absent == 0


def test_a_claim_is_usable_once_and_only_for_this_processs_offsets() -> None:
    log, _ = recovery()
    log.record(Target(), Outgoing("e", 1))
    log.dropped("sid", "pid", frozenset(), {}, 0)
    mine = f"{log.epoch}-1"
    assert log.claim("pid", "otherepoch-1") is None  # and the record is gone with it
    log.dropped("sid", "pid", frozenset(), {}, 0)
    claim = log.claim("pid", mine)
    assert claim is not None
    assert claim.sid == "sid"
    assert log.claim("pid", mine) is None
    for bad in (f"{log.epoch}-2", f"{log.epoch}-0", f"{log.epoch}-zz", 5, None):
        log.dropped("sid", "pid", frozenset(), {}, 0)
        assert (log.claim("pid", bad) is None) is (bad is not None), bad


def test_what_cannot_be_a_private_id_is_not_looked_up() -> None:
    log, _ = recovery()
    long = "p" * 65  # longer than any private id given out (22 characters)
    log.dropped("sid", long, frozenset(), {}, 0)
    assert log.claim(long, None) is None
    assert log.absent == 1  # it was not even looked up

"""The Redis backend: the conformance suite, several nodes, dead nodes and Redis outages."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.abc
import pytest
import redis.asyncio

from roomcast import App, BackendRefused, BackendUnavailable, InvalidRoomName, Request
from roomcast.backends import Backend
from roomcast.backends.redis import RedisBackend
from roomcast.testing import BackendConformance, TestClient

from .redis_support import REDIS_URL, drop_prefix, fresh_prefix, private_redis, require_redis

pytestmark = pytest.mark.usefixtures("redis_available")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # redis-py's client is asyncio-based


@pytest.fixture
def redis_available() -> None:
    require_redis()


@pytest.fixture
def prefix() -> Iterator[str]:
    value = fresh_prefix()
    yield value
    drop_prefix(value)


class TestRedisBackend(BackendConformance):
    cluster = True

    @pytest.fixture(autouse=True)
    def _prefix(self, prefix: str) -> None:
        self.prefix = prefix

    def make_backend(self) -> Backend:
        return RedisBackend(REDIS_URL, prefix=self.prefix)


def make_app(url: str, prefix: str, **options: Any) -> App:
    app = App(backend=RedisBackend(url, prefix=prefix, **options))

    @app.route("join")
    async def join(req: Request) -> None:
        for room in req.data:
            await req.join(room)

    @app.route("say")
    async def say(req: Request) -> None:
        rooms, text = req.data["rooms"], req.data["text"]
        if req.data.get("others"):
            await req.room(*rooms).broadcast("said", text)
        else:
            await app.room(*rooms).broadcast("said", text)

    @app.route("direct")
    async def direct(req: Request) -> None:
        await app.emit(req.data["to"], "said", req.data["text"])

    @app.route("everyone")
    async def everyone(req: Request) -> None:
        await app.broadcast("said", req.data)

    @app.route("members")
    async def members(req: Request) -> Any:
        return sorted(await app.room(req.data).members())

    return app


@pytest.fixture
async def nodes(prefix: str) -> AsyncIterator[tuple[App, App]]:
    async with make_app(REDIS_URL, prefix) as one, make_app(REDIS_URL, prefix) as two:
        yield one, two


async def texts_until(client: TestClient, marker: str) -> list[Any]:
    received = []
    while (msg := await client.receive(timeout=5)).data != marker:
        received.append(msg.data)
    return received


async def test_broadcasts_cross_nodes_exactly_once(nodes: tuple[App, App]) -> None:
    one, two = nodes
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(TestClient(one))
        b = await stack.enter_async_context(TestClient(two))
        c = await stack.enter_async_context(TestClient(two))
        d = await stack.enter_async_context(TestClient(one))
        await a.call("join", ["x", "y"])
        await b.call("join", ["x", "y"])
        await c.call("join", ["y"])
        await a.emit("say", {"rooms": ["x", "y"], "text": "all members"})
        await a.emit("say", {"rooms": ["x", "y"], "text": "not me", "others": True})
        await a.emit("direct", {"to": c.sid, "text": "just c"})
        await a.emit("everyone", "end")
        assert await texts_until(a, "end") == ["all members"]
        assert await texts_until(b, "end") == ["all members", "not me"]
        assert await texts_until(c, "end") == ["all members", "not me", "just c"]
        assert await texts_until(d, "end") == []


async def test_members_and_rooms_are_cluster_wide(nodes: tuple[App, App]) -> None:
    one, two = nodes
    async with TestClient(one) as a, TestClient(two) as b:
        await a.call("join", ["x"])
        await b.call("join", ["x", "y"])
        for app in (one, two):
            assert await app.room("x").members() == {a.sid, b.sid}
            assert await app.room("x", "y").count() == 2
            assert await app.rooms_of(b.sid) == {"x", "y"}
        await b.disconnect()
        assert await one.room("x").members() == {a.sid}
        assert await one.rooms_of(b.sid) == frozenset()


async def test_one_senders_messages_arrive_in_order_on_another_node(
    nodes: tuple[App, App],
) -> None:
    one, two = nodes
    async with TestClient(one) as a, TestClient(two) as b:
        await b.call("join", ["x"])
        for n in range(100):
            await a.emit("say", {"rooms": ["x"], "text": n})
        assert [(await b.receive()).data for _ in range(100)] == list(range(100))


async def test_a_node_receives_only_rooms_it_has_members_in(nodes: tuple[App, App]) -> None:
    one, two = nodes
    backend = two.backend
    assert isinstance(backend, RedisBackend)
    frames: list[str] = []
    real_receive = backend._receive

    async def counting_receive(channel: str, data: bytes) -> None:
        frames.append(channel)
        await real_receive(channel, data)

    backend._receive = counting_receive  # type: ignore[method-assign]
    async with TestClient(one) as a, TestClient(two) as b:
        await a.call("join", ["busy"])
        await b.call("join", ["mine"])
        for n in range(20):
            await a.emit("say", {"rooms": ["busy"], "text": n})
        await a.emit("say", {"rooms": ["mine"], "text": "for b"})
        assert (await b.receive()).data == "for b"
    assert all(channel.endswith("room:mine") for channel in frames), frames
    assert len(frames) == 1


def _run_node_and_kill(url: str, prefix: str) -> str:
    """Start a node in another process with one member present in room `doomed`; kill -9
    it."""
    script = f"""
import anyio
from roomcast import App
from roomcast.backends.redis import RedisBackend
from roomcast.testing import TestClient

async def main():
    app = App(backend=RedisBackend({url!r}, prefix={prefix!r}, dead_after=2, heartbeat=0.5))

    @app.route("join")
    async def join(req):
        await req.track(req.data, {{"name": "doomed"}})

    async with app, TestClient(app) as client:
        await client.call("join", "doomed")
        await anyio.sleep(0.3)  # the join's diff leaves the outbox for Redis
        print(client.sid, flush=True)
        await anyio.sleep(60)  # the node stays up until it is killed

anyio.run(main)
"""
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    sid = process.stdout.readline().strip()
    assert sid, "the node did not start"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    process.stdout.close()
    return sid


async def test_the_members_of_a_killed_process_are_removed(prefix: str) -> None:
    async with make_app(REDIS_URL, prefix, dead_after=2, heartbeat=0.5) as survivor:
        sid = await anyio.to_thread.run_sync(_run_node_and_kill, REDIS_URL, prefix)
        killed_at = time.monotonic()
        assert await survivor.room("doomed").members() == {sid}
        while await survivor.room("doomed").count():
            assert time.monotonic() - killed_at < 2 + 2 * 0.5 + 3, "never reaped"
            await anyio.sleep(0.1)
        assert await survivor.rooms_of(sid) == frozenset()


async def test_the_presences_of_a_killed_process_leave_with_diffs(prefix: str) -> None:
    async with (
        make_app(REDIS_URL, prefix, dead_after=2, heartbeat=0.5) as survivor,
        TestClient(survivor) as watcher,
    ):
        await watcher.call("join", ["doomed"])
        sid = await anyio.to_thread.run_sync(_run_node_and_kill, REDIS_URL, prefix)
        killed_at = time.monotonic()
        joined = (await watcher.receive("presence_diff")).data
        assert joined["joins"][sid][0]["name"] == "doomed"
        left = (await watcher.receive("presence_diff", timeout=2 + 2 * 0.5 + 3)).data
        assert time.monotonic() - killed_at < 2 + 2 * 0.5 + 3
        assert left == {"room": "doomed", "joins": {}, "leaves": joined["joins"]}
        assert await survivor.room("doomed").presence() == {}


async def test_a_process_that_stops_tells_the_others_of_its_presences(prefix: str) -> None:
    goes = make_app(REDIS_URL, prefix)

    @goes.route("track")
    async def track(req: Request) -> None:
        await req.track("room", {"name": "leaving"})

    started, stop, stopped = anyio.Event(), anyio.Event(), anyio.Event()

    async def serve() -> None:  # as a lifespan does, in a task of its own
        async with goes:
            started.set()
            await stop.wait()
        stopped.set()

    async with (
        make_app(REDIS_URL, prefix) as stays,
        TestClient(stays) as watcher,
        anyio.create_task_group() as tg,
    ):
        await watcher.call("join", ["room"])
        tg.start_soon(serve)
        await started.wait()
        async with TestClient(goes) as leaving:
            await leaving.call("track")
            joined = (await watcher.receive("presence_diff")).data
            stop.set()  # the app stops with its connection still open
            await stopped.wait()
            left = (await watcher.receive("presence_diff")).data
        assert left["leaves"] == joined["joins"]
        assert await stays.room("room").presence() == {}


def test_default_bound_on_reaping_is_within_fifteen_seconds() -> None:
    backend = RedisBackend()
    assert backend.dead_after + backend.heartbeat <= 15
    with pytest.raises(ValueError, match="heartbeat"):
        RedisBackend(dead_after=1, heartbeat=1)


async def test_redis_going_away_and_coming_back(prefix: str) -> None:
    with private_redis() as server:
        options = {"timeout": 0.5, "max_backoff": 0.2, "heartbeat": 0.3, "dead_after": 3}
        async with (
            make_app(server.url, prefix, **options) as one,
            make_app(server.url, prefix, **options) as two,
            TestClient(one) as a,
            TestClient(one) as b,
            TestClient(two) as c,
        ):
            backend = one.backend
            assert isinstance(backend, RedisBackend)
            await a.call("join", ["x"])
            await b.call("join", ["x"])
            await c.call("join", ["x"])
            server.stop()

            # Local delivery goes on; what needs Redis fails fast and clearly.
            await a.emit("say", {"rooms": ["x"], "text": "during the outage"})
            assert (await b.receive()).data == "during the outage"
            answer = await a.call("members", "x")
            assert answer["error"]["code"] == "unavailable"
            started = time.monotonic()
            with pytest.raises(BackendUnavailable):
                await one.room("x").members()
            assert time.monotonic() - started < 1.0
            assert not backend.available
            await a.call("join", ["joined while down"])

            server.start()  # an empty Redis: everything is registered again
            other = two.backend
            assert isinstance(other, RedisBackend)
            with anyio.fail_after(10):
                while not (backend.available and other.available):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert await one.room("x").members() == {a.sid, b.sid, c.sid}
            assert await two.room("joined while down").members() == {a.sid}
            await a.emit("say", {"rooms": ["x"], "text": "back"})
            assert (await c.receive()).data == "back"
            assert (await b.receive()).data == "back"


async def test_room_history_across_a_redis_outage(prefix: str) -> None:
    """What docs/scaling.md says: broadcasts made while Redis is unreachable are delivered on
    this process but not kept, reading the history fails clearly, and a Redis that comes back
    empty has lost what it held; what is broadcast after the return is kept again."""
    with private_redis() as server:
        options = {"timeout": 0.5, "max_backoff": 0.2, "heartbeat": 0.3, "dead_after": 3}
        async with make_app(server.url, prefix, **options) as app, TestClient(app) as a:
            app.keep_history("x", size=10)
            backend = app.backend
            assert isinstance(backend, RedisBackend)
            await a.call("join", ["x"])
            await a.call("say", {"rooms": ["x"], "text": "before"})
            assert [e.data for e in await app.room("x").history()] == ["before"]
            server.stop()

            await a.call("say", {"rooms": ["x"], "text": "during"})
            assert [m.data for m in a.drain()] == ["before", "during"]
            with pytest.raises(BackendUnavailable):
                await app.room("x").history()

            server.start()  # empty
            with anyio.fail_after(10):
                while not backend.available:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
            assert await app.room("x").history() == []
            await a.call("say", {"rooms": ["x"], "text": "after"})
            assert [e.data for e in await app.room("x").history()] == ["after"]


async def test_a_crowd_of_operations_waits_for_connections_rather_than_failing(
    prefix: str,
) -> None:
    async with make_app(REDIS_URL, prefix, max_connections=10) as app, TestClient(app) as a:
        await a.call("join", ["crowd"])
        counts: list[int] = []

        async def count() -> None:
            counts.append(await app.room("crowd").count())

        async with anyio.create_task_group() as tg:
            for _ in range(300):
                tg.start_soon(count)
        assert counts == [1] * 300
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        assert backend.available


def test_frames_carry_binary_and_a_node_drops_its_own_unread() -> None:
    from roomcast.backends._redis_wire import frame as _frame
    from roomcast.backends._redis_wire import unframe as _unframe

    envelope = [["a", "b"], None, "sid", "message", {"blob": b"\x00\xff", "text": "é"}]
    assert _unframe(_frame("other", envelope)) == envelope

    async def own_frame_is_not_decoded() -> None:
        backend = RedisBackend()
        # Not a valid frame past its first line: decoding it would raise.
        await backend._receive("roomcast:c:room:a", backend._own_frames + b"not json")

    anyio.run(own_frame_is_not_decoded)


async def test_a_burst_of_broadcasts_reaches_the_other_nodes_whole_and_in_order(
    prefix: str,
) -> None:
    count = 600  # more than one round trip to Redis takes
    async with (
        make_app(REDIS_URL, prefix) as one,
        make_app(REDIS_URL, prefix) as two,
        TestClient(two, max_buffered=count) as far,
        TestClient(one, max_buffered=count) as near,
    ):
        await far.call("join", ["x"])
        await near.call("join", ["x"])
        for i in range(count):
            await one.room("x").broadcast("n", i)
        assert [m.data for m in near.drain()] == list(range(count))  # at once, locally
        with anyio.fail_after(10):
            received = [(await far.receive()).data for _ in range(count)]
        assert received == list(range(count))


async def test_a_node_sends_what_it_published_before_it_stops(prefix: str) -> None:
    count = 300
    async with make_app(REDIS_URL, prefix) as two, TestClient(two, max_buffered=count) as far:
        await far.call("join", ["x"])
        async with make_app(REDIS_URL, prefix) as one:
            for i in range(count):
                await one.room("x").broadcast("n", i)
        # `one` has stopped: whatever it had not sent yet went out as it closed.
        with anyio.fail_after(10):
            received = [(await far.receive()).data for _ in range(count)]
        assert received == list(range(count))


async def test_a_name_that_is_not_unicode_cuts_no_node_off(
    nodes: tuple[App, App], prefix: str
) -> None:
    """The room `"\\ud800"` once cut a node off its cluster for good; it is refused at the
    door now, and both nodes go on exchanging messages, leaving no member behind."""
    one, two = nodes
    async with TestClient(one) as a, TestClient(two) as b:
        answer = await a.call("join", ["\ud800"])
        assert answer["error"]["code"] == "invalid_payload"
        answer = await a.call("say", {"rooms": ["x\udfff"], "text": "?"})
        assert answer["error"]["code"] == "invalid_payload"
        with pytest.raises(InvalidRoomName):
            await one.room("\ud800").broadcast("e")
        await b.call("join", ["x"])
        await a.call("join", ["x"])
        await a.emit("say", {"rooms": ["x"], "text": "still connected"})
        assert (await b.receive()).data == "still connected"
        for app in (one, two):
            assert isinstance(app.backend, RedisBackend)
            assert app.backend.healthy
            assert app.backend.supervisor.restarts == 0
    async with make_app(REDIS_URL, prefix) as observer:
        assert await observer.room("x").members() == frozenset()  # no ghost


async def test_a_redis_that_refuses_the_backend_says_why_at_start(prefix: str) -> None:
    import redis.exceptions

    app = App(backend=RedisBackend(REDIS_URL.rsplit("/", 1)[0] + "/99", prefix=prefix))
    with pytest.raises(BackendRefused, match="DB index is out of range") as info:
        async with app:
            pytest.fail("started")
    assert isinstance(info.value.__cause__, redis.exceptions.ResponseError)


async def test_a_server_that_is_not_redis_is_named_at_start(prefix: str) -> None:
    async def answer_http(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    async with await anyio.create_tcp_listener(local_host="127.0.0.1") as listener:
        port = listener.extra(anyio.abc.SocketAttribute.local_port)
        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, answer_http)
            app = App(backend=RedisBackend(f"redis://127.0.0.1:{port}/0", prefix=prefix))
            with pytest.raises(BackendRefused, match="Protocol Error"):
                async with app:
                    pytest.fail("started")
            tg.cancel_scope.cancel()


async def test_an_unreachable_redis_is_not_refused_the_node_runs_locally(prefix: str) -> None:
    from .servers import free_port

    app = make_app(f"redis://127.0.0.1:{free_port()}/0", prefix, timeout=0.2)
    async with app, TestClient(app) as a, TestClient(app) as b:
        assert not app.backend.healthy
        await b.call("join", ["x"])
        await a.emit("say", {"rooms": ["x"], "text": "local"})
        assert (await b.receive()).data == "local"


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_on_trio_the_backend_refuses_at_once(prefix: str) -> None:
    app = App(backend=RedisBackend(REDIS_URL, prefix=prefix))
    with pytest.raises(RuntimeError, match="asyncio only"):
        async with app:
            pytest.fail("started")


async def test_a_script_with_no_transport_reaches_the_cluster(prefix: str) -> None:
    async with make_app(REDIS_URL, prefix) as server, TestClient(server) as member:
        await member.call("join", ["lobby"])
        async with App(backend=RedisBackend(REDIS_URL, prefix=prefix)) as script:
            await script.room("lobby").broadcast("announce", "from a script")
            await script.emit(member.sid, "direct", "just you")
        # Leaving the script's app sent what was waiting; it arrives in order.
        assert (await member.receive()).data == "from a script"
        assert (await member.receive()).data == "just you"


async def test_calls_and_presences_leave_nothing_behind(
    prefix: str, nodes: tuple[App, App]
) -> None:
    """A client that never answers, and presences that come and go, cost nothing after."""
    one, two = nodes
    async with TestClient(one) as silent, TestClient(one) as tracker:
        for _ in range(3):
            with pytest.raises(TimeoutError):
                await two.call(silent.sid, "never answered", timeout=0.1)
        assert two.backend._waiting == {}  # type: ignore[attr-defined]
        assert not one.hub.index.connections[silent.sid].calls

        @one.route("track")
        async def track(req: Request) -> None:
            await req.track(req.data, {"name": "t"})

        await tracker.call("track", "r1")
        await tracker.call("track", "r2")
        assert list(await two.room("r1").presence()) == [tracker.sid]
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        left = [key async for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        await client.aclose()
    names = sorted(key.decode().removeprefix(prefix).split(":")[0] for key in left)
    assert set(names) <= {"alive", "nodes"}, names


async def test_a_bad_command_frame_is_answered_and_the_listener_goes_on(
    nodes: tuple[App, App],
) -> None:
    one, two = nodes
    async with TestClient(one) as client:
        backend = one.backend
        assert isinstance(backend, RedisBackend)
        from roomcast.backends._redis_wire import frame

        channel = f"{backend.prefix}c:node:{backend.node_id}".encode()
        await backend._receive_safely(channel, frame("x", ["q", 1, "nobody", client.sid]))
        await backend._receive_safely(channel, frame("x", ["q", 2, "x", client.sid, "nope", []]))
        await backend._receive_safely(channel, frame("x", ["r", "junk"]))
        await anyio.wait_all_tasks_blocked()
        assert backend.healthy
        assert await two.join(client.sid, "still working") is True


async def test_a_crowd_tracking_at_once_does_not_cut_a_node_off(prefix: str) -> None:
    """Hundreds of connections joining and tracking at once, on a node with few Redis
    connections and a short timeout: their writes share round trips, so none waits behind the
    others past the timeout, Redis is not declared lost, and every process agrees."""
    options = {"max_connections": 2, "timeout": 0.1}
    async with (
        make_app(REDIS_URL, prefix, **options) as one,
        make_app(REDIS_URL, prefix, **options) as two,
        AsyncExitStack() as stack,
    ):

        @one.route("track")
        async def track(req: Request) -> None:
            await req.track("crowd", {"n": req.data})

        clients = [await stack.enter_async_context(TestClient(one)) for _ in range(400)]
        async with anyio.create_task_group() as tg:
            for n, client in enumerate(clients):
                tg.start_soon(client.call, "track", n)
        for app in (one, two):
            backend = app.backend
            assert isinstance(backend, RedisBackend)
            assert backend.available
            assert backend.supervisor.restarts == 0
        presences = await two.room("crowd").presence()
        assert sorted(metas[0]["n"] for metas in presences.values()) == list(range(400))
        await stack.aclose()  # and they all leave at once
        assert await two.room("crowd").presence() == {}
        assert await two.room("crowd").members() == frozenset()


async def test_a_session_json_cannot_carry_gives_a_fresh_connection_elsewhere(
    nodes: tuple[App, App],
) -> None:
    """Recovering through another process sends the session as JSON: one that JSON cannot
    carry is not recovered there, and neither process's backend suffers for it."""
    from roomcast._recovery import Recovery

    one, two = nodes
    for app in (one, two):
        app.hub.recover_with(Recovery(60.0, lambda message: 100))

    @one.route("keep")
    async def keep(req: Request) -> None:
        req.session["a set"] = {1, 2}

    async with TestClient(one) as client:
        await client.call("keep")
        await one.hub.closed(client.sid, resumable="the private id")  # as a drop would
        assert await two.hub.claim("the private id", None) is None
    for app in (one, two):
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        assert backend.healthy
    async with TestClient(one) as other:  # and commands still go through
        assert await two.join(other.sid, "room") is True


async def test_a_room_kept_for_a_dropped_connection_is_let_go_once_it_expires(
    prefix: str,
) -> None:
    from roomcast._recovery import Recovery

    async with make_app(REDIS_URL, prefix, heartbeat=0.1, dead_after=1) as app:
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        app.hub.recover_with(Recovery(0.3, lambda message: 100))
        async with TestClient(app) as client:
            await client.call("join", ["kept"])
            await app.hub.closed(client.sid, resumable="pid")  # as a drop would
        assert "kept" in backend._subscribed  # its broadcasts are still wanted, for it
        await anyio.sleep(0.3 + 3 * 0.1)  # the record expires, then a heartbeat or two
        assert "kept" not in backend._subscribed


async def test_a_process_that_does_not_answer_is_an_error_on_time(prefix: str) -> None:
    """What the docs promise when the process holding a connection (or a dropped one) does
    not answer, as when it died before it was reaped."""
    from roomcast._recovery import Recovery

    async with make_app(REDIS_URL, prefix, timeout=0.3) as app:
        app.hub.recover_with(Recovery(60.0, lambda message: 100))
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        try:  # a connection, and a dropped one, of a node that answers nothing
            await client.hset(f"{prefix}owner", "ghost-sid", "ghost-node")
            await client.set(f"{prefix}pid:ghost-pid", "ghost-node")
        finally:
            await client.aclose()
        with anyio.fail_after(3):
            for command in (app.join, app.leave):
                with pytest.raises(BackendUnavailable):
                    await command("ghost-sid", "room")
            with pytest.raises(BackendUnavailable):
                await app.disconnect("ghost-sid")
            with pytest.raises(TimeoutError):
                await app.call("ghost-sid", "question", timeout=0.2)
            assert await app.hub.claim("ghost-pid", None) is None  # it connects afresh
        backend = app.backend
        assert isinstance(backend, RedisBackend)
        assert backend._waiting == {}
        assert backend.healthy

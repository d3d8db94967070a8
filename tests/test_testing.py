from typing import Any

import anyio
import pytest

from roomcast import App, ConnectionClosed, ConnectionRejected, Reject, Request
from roomcast.testing import Message, TestClient


def make_app() -> App:
    app = App()

    @app.on_connect
    async def gate(req: Request) -> None:
        if req.data == "no":
            raise Reject("go away")

    @app.route("echo")
    async def echo(req: Request) -> Any:
        await req.emit("echoed", req.data)
        return req.data

    @app.route("silent")
    async def silent(req: Request) -> None:
        await anyio.sleep(10)  # a handler that stays busy and never answers

    @app.route("flood")
    async def flood(req: Request) -> None:
        for n in range(req.data):
            await req.emit("n", n)

    return app


async def test_receive_and_call() -> None:
    app = make_app()
    async with TestClient(app) as client:
        assert client.connected
        assert await client.call("echo", [1, 2]) == [1, 2]
        assert await client.receive(timeout=1.0) == Message("echoed", [1, 2])


async def test_receive_times_out_with_timeout_error() -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.05)


async def test_call_times_out_when_no_ack_arrives() -> None:
    async with TestClient(make_app()) as client:
        with pytest.raises(TimeoutError):
            await client.call("silent", timeout=0.05)


async def test_refused_client_raises_with_the_reason() -> None:
    app = make_app()
    with pytest.raises(ConnectionRejected, match="go away") as info:
        async with TestClient(app, auth="no"):
            pytest.fail("should not connect")
    assert info.value.reason == "go away"
    assert app.connections == frozenset()


async def test_payloads_go_through_the_wire_format() -> None:
    app = App()
    received: list[Any] = []

    @app.route("keep")
    async def keep(req: Request) -> Any:
        received.append(req.data)
        return {"tuple": (1, 2), 3: "int key", "blob": b"\x00\x01"}

    async with TestClient(app) as client:
        sent = {"nested": (1, 2), "bytes": b"\xff"}
        answer = await client.call("keep", sent)
        assert received == [{"nested": [1, 2], "bytes": b"\xff"}]
        assert answer == {"tuple": [1, 2], "3": "int key", "blob": b"\x00\x01"}
        with pytest.raises(TypeError):
            await client.emit("keep", {1, 2})


async def test_a_payload_the_wire_cannot_carry_is_an_internal_error() -> None:
    app = App()

    @app.route("bad")
    async def bad(req: Request) -> None:
        await req.respond({"a set": {1, 2}})

    async with TestClient(app) as client:
        answer = await client.call("bad")
        assert answer == {"error": {"code": "internal", "message": "Internal server error."}}


async def test_a_waiting_reader_wakes_for_each_event_and_for_the_close() -> None:
    app = make_app()
    async with TestClient(app) as client:
        received: list[Any] = []

        async def read() -> None:
            try:
                while True:
                    received.append((await client.receive(timeout=30)).data)
            except ConnectionClosed:
                received.append("closed")

        with anyio.fail_after(5):  # far below the reader's own timeout
            async with anyio.create_task_group() as tg:
                tg.start_soon(read)
                for n in range(3):
                    await anyio.wait_all_tasks_blocked()  # the reader waits when each one comes
                    await app.emit(client.sid, "n", n)
                await anyio.wait_all_tasks_blocked()
                await app.disconnect(client.sid)
        assert received == [0, 1, 2, "closed"]
        assert not client.connected


async def test_disconnect_is_idempotent_and_closes() -> None:
    app = make_app()
    async with TestClient(app) as client:
        await client.disconnect()
        await client.disconnect()
        assert not client.connected
        with pytest.raises(ConnectionClosed):
            await client.emit("echo", 1)
        with pytest.raises(ConnectionClosed):
            await client.receive(timeout=0.1)
    assert app.connections == frozenset()


async def test_events_sent_before_a_close_can_still_be_read() -> None:
    app = make_app()
    async with TestClient(app) as client:
        await client.call("flood", 3)
        await client.disconnect()
        assert [(await client.receive()).data for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ConnectionClosed):
            await client.receive()


async def test_a_client_that_falls_too_far_behind_is_disconnected() -> None:
    app = make_app()
    async with TestClient(app, max_buffered=5) as slow, TestClient(app) as other:
        with pytest.raises(ConnectionClosed):  # nobody reads while the handler sends
            await slow.call("flood", 20)
        received = [(await slow.receive()).data for _ in range(5)]
        with pytest.raises(ConnectionClosed):
            await slow.receive()
        assert received == [0, 1, 2, 3, 4]
        assert app.connections == {other.sid}
        assert await other.call("echo", "ok") == "ok"


async def test_a_client_connects_once() -> None:
    client = TestClient(make_app())
    async with client:
        pass
    with pytest.raises(RuntimeError, match="once"):
        async with client:
            pass


async def test_leaving_the_block_cancels_a_handler_still_running() -> None:
    app = make_app()
    with anyio.fail_after(5):  # "silent" sleeps for 10 s
        async with TestClient(app) as client:
            await client.emit("silent")
            await anyio.wait_all_tasks_blocked()
    assert app.connections == frozenset()


def test_repr() -> None:
    client = TestClient(App())
    assert repr(client) == f"<TestClient sid={client.sid!r} new>"


async def test_an_exception_in_the_block_comes_out_unwrapped() -> None:
    with pytest.raises(TimeoutError):
        async with TestClient(make_app()) as client, TestClient(make_app()):
            await client.receive(timeout=0.01)


async def test_no_acknowledgement_after_the_server_closed_the_connection() -> None:
    app = App()

    @app.route("leave_now")
    async def leave_now(req: Request) -> str:
        await app.disconnect(req.sid)
        return "too late"

    async with TestClient(app) as client:
        with pytest.raises(ConnectionClosed):
            await client.call("leave_now", timeout=5)


async def test_environ_reaches_the_hooks() -> None:
    app = App()
    seen: list[Any] = []

    @app.on_connect
    async def look(req: Request) -> None:
        seen.append(dict(req.environ))

    async with TestClient(app, environ={"HTTP_COOKIE": "a=1"}), TestClient(app):
        pass
    assert seen == [{"HTTP_COOKIE": "a=1"}, {}]


async def test_drop_oldest_keeps_a_slow_client_with_the_newest_events() -> None:
    from roomcast import Limits

    app = App(limits=Limits(max_queued=5, slow_consumer="drop_oldest"))

    @app.route("flood")
    async def flood(req: Request) -> None:
        for n in range(20):
            await req.emit("n", n)

    async with TestClient(app) as client:
        await client.call("flood")
        assert [(await client.receive()).data for _ in range(5)] == [15, 16, 17, 18, 19]
        assert client.connected
    assert app.stats.events_dropped == 15
    assert app.stats.slow_consumers_disconnected == 0


async def test_the_app_counts_slow_consumers_it_disconnected() -> None:
    from roomcast import Limits

    app = App(limits=Limits(max_queued=3))

    @app.route("flood")
    async def flood(req: Request) -> None:
        for n in range(10):
            await req.emit("n", n)

    async with TestClient(app) as client:
        with pytest.raises(ConnectionClosed):
            await client.call("flood")
    assert app.stats.slow_consumers_disconnected == 1


async def test_drain_takes_what_is_waiting_without_waiting() -> None:
    app = make_app()
    async with TestClient(app) as client:
        assert client.drain() == []
        await client.call("flood", 3)
        assert client.drain() == [Message("n", 0), Message("n", 1), Message("n", 2)]
        assert client.drain() == []


async def test_receive_an_event_by_name_stepping_over_the_others() -> None:
    app = App()

    @app.route("mixed")
    async def mixed(req: Request) -> None:
        for name in ("tick", "tick", "answer", "tick"):
            await req.emit(name, name)

    async with TestClient(app) as client:
        await client.emit("mixed")
        assert await client.receive("answer") == Message("answer", "answer")
        # What was stepped over waits, in order.
        assert [(await client.receive()).event for _ in range(3)] == ["tick"] * 3
        with pytest.raises(TimeoutError):
            await client.receive("answer", timeout=0.05)


async def test_a_named_receive_waits_for_its_event_to_come() -> None:
    app = App()

    @app.route("later")
    async def later(req: Request) -> None:
        await req.emit("tick")
        await req.emit("answer", 42)

    async with TestClient(app) as client:
        async with anyio.create_task_group() as tg:
            got: list[Message] = []

            async def wait() -> None:
                got.append(await client.receive("answer"))

            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()  # it waits before anything came
            await client.emit("later")
        assert got == [Message("answer", 42)]
        assert client.drain() == [Message("tick", None)]


async def test_expect_nothing_waits_for_the_app_not_for_time() -> None:
    app = App()
    release = anyio.Event()

    @app.route("quiet")
    async def quiet(req: Request) -> None:
        await release.wait()

    @app.route("loud")
    async def loud(req: Request) -> None:
        await anyio.lowlevel.checkpoint()  # the event comes after a trip through the loop
        await req.emit("noise", 1)

    async with TestClient(app) as client:
        await client.emit("quiet")
        await client.expect_nothing()
        await client.emit("loud")  # queued behind "quiet": nothing can come yet
        await client.expect_nothing()
        release.set()
        with pytest.raises(AssertionError, match="noise"):
            await client.expect_nothing()
        await client.expect_nothing("other")  # only events of that name count
        assert (await client.receive()).event == "noise"  # still waiting to be read

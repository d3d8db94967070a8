"""One suite every backend must pass: rooms, the who-receives-what table, presence, the
server's hand on a connection and room history, through `TestClient`.

```python
from roomcast.testing import BackendConformance

class TestMyBackend(BackendConformance):
    cluster = True                   # backends made by one test share their state

    def make_backend(self) -> Backend:
        return MyBackend(...)        # a fresh backend with empty state for each test
```

With `cluster = True`, the presence, server's-hand and history cases run with two apps, each with a
backend of its own from `make_backend`, as two processes would: what one does is seen and done
through the other. Else both sides are one app.

The tests are `async def` methods; run them with anyio's pytest plugin
(`anyio_mode = "auto"`, or `pytestmark = pytest.mark.anyio` in the module).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import anyio

from .._app import App
from .._exceptions import ConnectionClosed
from .._request import Request
from ..backends import Backend
from ._client import TestClient


class BackendConformance:
    """Subclass it in a test module and implement `make_backend`."""

    cluster = False
    """Whether two backends that `make_backend` returns in one test share their state."""

    def make_backend(self) -> Backend:
        """A new backend with empty state (shared with the others made in the same test, for
        a `cluster`); called once per app."""
        raise NotImplementedError("Implement make_backend() in the subclass.")

    def make_app(self) -> App:
        app = App(backend=self.make_backend())
        app.keep_history("kept:*", size=3, ttl=60)
        app.keep_history("brief:*", size=10, ttl=0.3)

        @app.route("join")
        async def join(req: Request) -> None:
            for room in req.data:
                await req.join(room)

        @app.route("leave")
        async def leave(req: Request) -> None:
            await req.leave(req.data)

        @app.route("track")
        async def track(req: Request) -> None:
            await req.track(req.data["room"], req.data["meta"], key=req.data.get("key"))

        @app.route("untrack")
        async def untrack(req: Request) -> None:
            await req.untrack(req.data)

        @app.route("say")
        async def say(req: Request) -> None:
            how, rooms, text = req.data["how"], req.data.get("rooms", []), req.data["text"]
            if how == "req.emit":
                await req.emit("said", text)
            elif how == "req.broadcast":
                await req.broadcast("said", text)
            elif how == "req.room":
                await req.room(*rooms).broadcast("said", text)
            elif how == "app.room":
                await app.room(*rooms).broadcast("said", text)
            elif how == "app.broadcast":
                await app.broadcast("said", text)
            elif how == "app.emit":
                await app.emit(req.data["to"], "said", text)

        return app

    async def _said(self, clients: list[TestClient], text: str) -> list[bool]:
        """For each client, whether it received `text` exactly once (and nothing else).

        The first client then broadcasts a marker to everyone: as one sender's messages
        arrive in order, what a client got before the marker is all it will get."""
        marker = f"end of {text}"
        await clients[0].emit("say", {"how": "app.broadcast", "text": marker})
        got = []
        for client in clients:
            texts = []
            while (msg := await client.receive(timeout=5)).data != marker:
                texts.append(msg.data)
            assert texts in ([], [text]), f"{client.sid} received {texts!r}"
            got.append(texts == [text])
        return got

    async def _clients(self, stack: AsyncExitStack, app: App, count: int) -> list[TestClient]:
        return [await stack.enter_async_context(TestClient(app)) for _ in range(count)]

    async def test_who_receives_what(self) -> None:
        async with AsyncExitStack() as stack:
            app = await stack.enter_async_context(self.make_app())
            a, b, c, d = await self._clients(stack, app, 4)
            await a.emit("join", ["r1"])
            await b.emit("join", ["r1", "r2"])
            await c.emit("join", ["r2"])
            await a.call("join", [])  # a's joins are done
            for who in (b, c):
                await who.call("join", [])
            cases = [
                ("req.emit", [], [True, False, False, False]),
                ("req.broadcast", [], [False, True, True, True]),
                ("req.room", ["r1"], [False, True, False, False]),
                ("app.room", ["r1"], [True, True, False, False]),
                ("app.room", ["r1", "r2"], [True, True, True, False]),
                ("req.room", ["r1", "r2"], [False, True, True, False]),
                ("app.room", ["nobody-here"], [False, False, False, False]),
                ("app.broadcast", [], [True, True, True, True]),
            ]
            for n, (how, rooms, expected) in enumerate(cases):
                text = f"{how} {rooms} #{n}"
                await a.emit("say", {"how": how, "rooms": rooms, "text": text})
                assert await self._said([a, b, c, d], text) == expected, (how, rooms)
            await a.emit("say", {"how": "app.emit", "to": d.sid, "text": "direct"})
            assert await self._said([a, b, c, d], "direct") == [False, False, False, True]

    async def test_members_count_and_rooms_of(self) -> None:
        async with AsyncExitStack() as stack:
            app = await stack.enter_async_context(self.make_app())
            a, b = await self._clients(stack, app, 2)
            await a.call("join", ["r1", "r2"])
            await b.call("join", ["r1"])
            assert await app.room("r1").members() == {a.sid, b.sid}
            assert await app.room("r1").count() == 2
            assert await app.room("r1", "r2").count() == 2
            assert await app.room("r2").members() == {a.sid}
            assert await app.rooms_of(a.sid) == {"r1", "r2"}
            assert await app.rooms_of("no-such-sid") == frozenset()
            await a.call("leave", "r2")
            assert await app.room("r2").count() == 0
            assert await app.rooms_of(a.sid) == {"r1"}
            await a.call("join", ["r1"])  # joining twice changes nothing
            assert await app.room("r1").count() == 2

    async def test_disconnect_leaves_every_room(self) -> None:
        async with AsyncExitStack() as stack:
            app = await stack.enter_async_context(self.make_app())
            (a,) = await self._clients(stack, app, 1)
            async with TestClient(app) as b:
                await b.call("join", ["r1", "r2"])
                sid = b.sid
            assert await app.rooms_of(sid) == frozenset()
            assert await app.room("r1").members() == frozenset()
            await a.emit("say", {"how": "app.room", "rooms": ["r1"], "text": "anyone?"})
            assert await self._said([a], "anyone?") == [False]

    async def test_order_of_one_sender_is_kept(self) -> None:
        async with AsyncExitStack() as stack:
            app = await stack.enter_async_context(self.make_app())
            a, b = await self._clients(stack, app, 2)
            await b.call("join", ["r"])
            for n in range(30):
                await a.emit("say", {"how": "app.room", "rooms": ["r"], "text": n})
            assert [(await b.receive(timeout=2)).data for _ in range(30)] == list(range(30))

    async def test_many_connections_and_rooms(self) -> None:
        async with AsyncExitStack() as stack:
            app = await stack.enter_async_context(self.make_app())
            clients = await self._clients(stack, app, 20)
            async with anyio.create_task_group() as tg:
                for n, client in enumerate(clients):
                    tg.start_soon(client.call, "join", [f"room{n % 3}", "all"])
            assert await app.room("all").count() == 20
            assert sum([await app.room(f"room{n}").count() for n in range(3)]) == 20
            for client in clients[:10]:
                await client.disconnect()
            assert await app.room("all").count() == 10

    # -- presence and the server's hand, seen from two processes (or one) --------------------

    async def _two_apps(self, stack: AsyncExitStack) -> tuple[App, App]:
        one = await stack.enter_async_context(self.make_app())
        if not self.cluster:
            return one, one
        return one, await stack.enter_async_context(self.make_app())

    @staticmethod
    def _shape(presences: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
        """Presences with each meta's name only (refs vary), for comparing."""
        return {key: [meta["name"] for meta in metas] for key, metas in presences.items()}

    @staticmethod
    async def _apply_diffs_until(
        client: TestClient, state: dict[str, list[dict[str, Any]]], wanted: dict[str, list[str]]
    ) -> dict[str, list[dict[str, Any]]]:
        """Apply the diffs `client` receives to `state`, as a client would, until it has the
        names `wanted`; fail after a few seconds."""
        with anyio.fail_after(5):
            while BackendConformance._shape(state) != wanted:
                diff = (await client.receive("presence_diff")).data
                for key, metas in diff["leaves"].items():
                    refs = {meta["ref"] for meta in metas}
                    left = [meta for meta in state.get(key, []) if meta["ref"] not in refs]
                    if left:
                        state[key] = left
                    else:
                        state.pop(key, None)
                for key, metas in diff["joins"].items():
                    have = {meta["ref"] for meta in state.get(key, [])}
                    state.setdefault(key, []).extend(m for m in metas if m["ref"] not in have)
        return state

    async def test_presence_state_diffs_and_every_process_agrees(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            ann = await stack.enter_async_context(TestClient(one))
            bob = await stack.enter_async_context(TestClient(two))
            await ann.call("track", {"room": "lobby", "meta": {"name": "Ann"}, "key": "u1"})
            state = (await ann.receive("presence_state")).data
            assert state["room"] == "lobby"
            assert self._shape(state["presences"]) == {"u1": ["Ann"]}
            await bob.call("track", {"room": "lobby", "meta": {"name": "Bob"}, "key": "u2"})
            bob_state = (await bob.receive("presence_state")).data["presences"]
            bob_state = await self._apply_diffs_until(
                bob, bob_state, {"u1": ["Ann"], "u2": ["Bob"]}
            )
            ann_state = await self._apply_diffs_until(
                ann, state["presences"], {"u1": ["Ann"], "u2": ["Bob"]}
            )
            for app in (one, two):
                presences = await app.room("lobby").presence()
                assert presences == ann_state == bob_state
                assert all(isinstance(meta["ref"], str) for m in presences.values() for meta in m)
            # An update is a leave of the old meta and a join of a new one, with a new ref.
            old_ref = ann_state["u1"][0]["ref"]
            await ann.call("track", {"room": "lobby", "meta": {"name": "Ann 2"}, "key": "u1"})
            wanted = {"u1": ["Ann 2"], "u2": ["Bob"]}
            bob_state = await self._apply_diffs_until(bob, bob_state, wanted)
            assert bob_state["u1"][0]["ref"] != old_ref
            # A member that untracks stays a member, and the others hear of it.
            await bob.call("untrack", "lobby")
            ann_state = await self._apply_diffs_until(ann, ann_state, {"u1": ["Ann 2"]})
            assert await one.room("lobby").members() == {ann.sid, bob.sid}
            # Leaving, or disconnecting, untracks.
            bob.drain()  # what came before the state it gets now
            await bob.call("track", {"room": "lobby", "meta": {"name": "Bob"}, "key": "u2"})
            bob_state = (await bob.receive("presence_state")).data["presences"]
            bob_state = await self._apply_diffs_until(bob, bob_state, wanted)
            await ann.disconnect()
            await self._apply_diffs_until(bob, bob_state, {"u2": ["Bob"]})
            assert self._shape(await one.room("lobby").presence()) == {"u2": ["Bob"]}
            await bob.call("leave", "lobby")
            assert await two.room("lobby").presence() == {}
            assert await one.room("lobby").presence() == {}

    async def test_presence_of_two_tabs_under_one_key(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            tab1 = await stack.enter_async_context(TestClient(one))
            tab2 = await stack.enter_async_context(TestClient(two))
            await tab1.call("track", {"room": "r", "meta": {"name": "first"}, "key": "u"})
            await tab2.call("track", {"room": "r", "meta": {"name": "second"}, "key": "u"})
            for app in (one, two):
                assert self._shape(await app.room("r").presence()) == {"u": ["first", "second"]}
            await tab1.call("leave", "r")
            assert self._shape(await two.room("r").presence()) == {"u": ["second"]}

    async def test_server_joins_leaves_and_disconnects_any_connection(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            ann = await stack.enter_async_context(TestClient(one))
            assert await two.join(ann.sid, "desk") is True
            assert await one.rooms_of(ann.sid) == {"desk"}
            await two.room("desk").broadcast("news", 1)
            assert (await ann.receive("news")).data == 1
            assert await two.leave(ann.sid, "desk") is True
            assert await two.room("desk").members() == frozenset()
            assert await two.join("no-such-sid", "desk") is False
            assert await two.leave("no-such-sid", "desk") is False
            await two.disconnect("no-such-sid")
            await two.disconnect(ann.sid)  # returns once it is done
            assert not ann.connected
            assert ann.sid not in one.connections

    async def test_server_calls_any_connection(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            ann = await stack.enter_async_context(TestClient(one))

            @ann.on("add")
            async def add(data: Any) -> Any:
                return data["a"] + data["b"]

            assert await two.call(ann.sid, "add", {"a": 1, "b": 2}) == 3
            ann.on("many", lambda data: [data, data])
            assert await two.call(ann.sid, "many", "x") == ["x", "x"]
            # Unknown sid: at once. No answer: TimeoutError, on time.
            with anyio.fail_after(1):
                with _raises(ConnectionClosed):
                    await two.call("no-such-sid", "add", {})
            with _raises(TimeoutError):
                await two.call(ann.sid, "unanswered", None, timeout=0.2)
            assert (await ann.receive("unanswered")).data is None

    async def test_server_call_ends_when_the_connection_goes(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            ann = await stack.enter_async_context(TestClient(one))
            outcome: list[Exception] = []
            ended = anyio.Event()

            async def call() -> None:
                try:
                    await two.call(ann.sid, "never", None, timeout=30)
                except Exception as exc:
                    outcome.append(exc)
                ended.set()

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call)
                    await ann.receive("never")  # the call has arrived
                    await ann.disconnect()
                    await ended.wait()
            assert [type(exc) for exc in outcome] == [ConnectionClosed]

    # -- history -----------------------------------------------------------------------------

    async def test_history_keeps_the_latest_broadcasts_of_kept_rooms(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            a = await stack.enter_async_context(TestClient(one))
            await a.call("join", ["kept:1"])
            for n in range(5):
                await a.call("say", {"how": "app.room", "rooms": ["kept:1"], "text": n})
            await a.call("say", {"how": "req.room", "rooms": ["kept:1", "other"], "text": 5})
            await a.call("say", {"how": "app.room", "rooms": ["other"], "text": "not kept"})
            await a.call("say", {"how": "app.broadcast", "text": "not kept either"})
            entries = await two.room("kept:1").history()
            assert [(e.event, e.data) for e in entries] == [("said", 3), ("said", 4), ("said", 5)]
            assert entries == await one.room("kept:1").history()
            offsets = [entry.offset for entry in entries]
            assert all(isinstance(offset, str) for offset in offsets)
            assert len(set(offsets)) == 3
            # After an offset: what came after it, the first `limit` of those.
            assert await two.room("kept:1").history(after=offsets[0]) == entries[1:]
            assert await two.room("kept:1").history(after=offsets[0], limit=1) == entries[1:2]
            assert await two.room("kept:1").history(after=offsets[2]) == []
            # Without: the latest `limit`.
            assert await two.room("kept:1").history(limit=2) == entries[1:]
            assert await two.room("kept:1").history(limit=0) == []
            assert await one.room("other").history() == []
            assert await one.room("kept:never").history() == []
            # Offsets increase: a later broadcast comes after every earlier one.
            await a.call("say", {"how": "app.room", "rooms": ["kept:1"], "text": 6})
            assert [e.data for e in await one.room("kept:1").history(after=offsets[2])] == [6]

    async def test_history_carries_what_the_wire_carries(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            await one.room("kept:data").broadcast("file", {"name": "a", "body": b"\x00\xff"})
            await one.room("kept:data").broadcast("tuple", (1, 2))
            entries = await two.room("kept:data").history()
            assert [(e.event, e.data) for e in entries] == [
                ("file", {"name": "a", "body": b"\x00\xff"}),
                ("tuple", [1, 2]),
            ]

    async def test_history_forgets_what_is_older_than_its_ttl(self) -> None:
        async with AsyncExitStack() as stack:
            one, two = await self._two_apps(stack)
            await one.room("brief:1").broadcast("old", 1)
            assert [e.event for e in await two.room("brief:1").history()] == ["old"]
            await anyio.sleep(0.5)  # the rule's ttl is 0.3 s
            assert await two.room("brief:1").history() == []

            await one.room("brief:1").broadcast("new", 2)
            assert [e.event for e in await two.room("brief:1").history()] == ["new"]

    async def test_history_refuses_what_is_not_an_offset(self) -> None:
        async with AsyncExitStack() as stack:
            one, _ = await self._two_apps(stack)
            await one.room("kept:x").broadcast("e", 1)
            with _raises(ValueError):
                await one.room("kept:x").history(after="not an offset")
            with _raises(TypeError):
                await one.room("kept:x", "kept:y").history()


@contextmanager
def _raises(expected: type[BaseException]) -> Iterator[None]:
    """Fail unless the block raises `expected`."""
    try:
        yield
    except expected:
        return
    raise AssertionError(f"{expected.__name__} was not raised")

"""One suite every backend must pass: rooms and the who-receives-what table, through
`TestClient`.

```python
from roomcast.testing import BackendConformance

class TestMyBackend(BackendConformance):
    def make_backend(self) -> Backend:
        return MyBackend(...)        # a fresh backend with empty state for each test
```

The tests are `async def` methods; run them with anyio's pytest plugin
(`anyio_mode = "auto"`, or `pytestmark = pytest.mark.anyio` in the module).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import anyio

from .._app import App
from .._request import Request
from ..backends import Backend
from ._client import TestClient


class BackendConformance:
    """Subclass it in a test module and implement `make_backend`."""

    def make_backend(self) -> Backend:
        """A new backend with empty state; called once per test."""
        raise NotImplementedError("Implement make_backend() in the subclass.")

    def make_app(self) -> App:
        app = App(backend=self.make_backend())

        @app.route("join")
        async def join(req: Request) -> None:
            for room in req.data:
                await req.join(room)

        @app.route("leave")
        async def leave(req: Request) -> None:
            await req.leave(req.data)

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

"""examples/basic_chat with connection-state recovery, as its command serves it, and the
official socket.io-client (Node) doing what the page does: `ready` on a fresh connection;
on a recovered one, `name` to be present again, and the messages it missed arrive by
themselves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from examples.basic_chat import __main__ as command
from examples.basic_chat.app import RECOVERY

from .servers import run_example
from .test_example import require_socketio_client
from .test_recovery import NodeClient, node_client


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # the Node clients are asyncio subprocesses


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The example, run by its README command (recovery on by default)."""
    require_socketio_client()
    log = Path(tmp_path_factory.mktemp("example")) / "server.log"
    with run_example(log) as (url, _):
        yield url


@pytest.fixture
def room() -> str:
    return f"chat-{uuid.uuid4().hex[:8]}"


def rooms(room: str, **more: Any) -> dict[str, Any]:
    """What the page sends with `ready`."""
    return {
        "chat_room": room,
        "signal_room": f"{room}:signal",
        "files_room": f"{room}:files",
    } | more


def said(room: str, message: str, author: str = "Bob") -> dict[str, Any]:
    return {"room": room, "author": author, "message": message}


class Page:
    """A Node client doing what the page does, and what it received, read in order: every
    line it printed is kept in `seen`, also those `NodeClient.next` passed over while waiting
    for something else (an acknowledgement)."""

    def __init__(self, client: NodeClient) -> None:
        self.client = client
        self.read = 0  # how many lines of `seen` `until` has read

    @property
    def seen(self) -> list[dict[str, Any]]:
        return self.client.seen

    async def next(self, kind: str) -> dict[str, Any]:
        return await self.client.next(kind)

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.client.call(event, data)

    def tell(self, **command: Any) -> None:
        self.client.tell(**command)

    async def until(self, event: str, test: Any = lambda data: True) -> Any:
        """Read up to the next `event` whose data passes `test`; return its data."""
        while True:
            while self.read < len(self.seen):
                message = self.seen[self.read]
                self.read += 1
                if message.get("event") == event and test(message["args"][0]):
                    return message["args"][0]
            await self.client.next("event")

    def since(self, mark: int, event: str) -> list[Any]:
        """The data of every `event` received after the first `mark` lines it printed."""
        return [m["args"][0] for m in self.seen[mark:] if m.get("event") == event]


@asynccontextmanager
async def pages(url: str, **alice_options: Any) -> AsyncIterator[tuple[Page, Page]]:
    """Alice and Bob, connected (Alice's socket.io-client with `alice_options`)."""
    async with node_client(url, **alice_options) as alice, node_client(url) as bob:
        yield Page(alice), Page(bob)


async def test_a_dropped_page_comes_back_with_every_message_it_missed(
    example: str, room: str
) -> None:
    # Alice reconnects a second after her connection drops: Bob talks meanwhile.
    away = {"reconnectionDelay": 1000, "reconnectionDelayMax": 1000, "randomizationFactor": 0}
    async with pages(example, **away) as (alice, bob):
        first = await alice.next("connect")
        assert first["recovered"] is False
        await bob.next("connect")
        await alice.call("ready", rooms(room, name="Alice"))
        await bob.call("ready", rooms(room, name="Bob"))
        await alice.until("announce")  # her own
        await alice.until("announce")  # Bob's
        await bob.call("send", said(room, "before"))
        assert (await alice.until("message"))["message"] == "before"

        alice.tell(cmd="drop")  # as a network loss would
        await alice.next("disconnect")
        alice.read = mark = len(alice.seen)
        # The server has seen her go once her presence has: then Bob says three things.
        await bob.until(
            "presence_diff", lambda d: d["room"] == room and first["id"] in d["leaves"]
        )
        for n in range(3):
            await bob.call("send", said(room, f"while away {n}"))

        back = await alice.next("connect")
        assert back["recovered"] is True
        assert back["id"] == first["id"]
        # As the page does: no `ready` (no "New client" again), `name` to be present again.
        await alice.call("name", {"name": "Alice"})
        state = await alice.until("presence_state", lambda d: d["room"] == room)
        names = {
            sid: [meta["name"] for meta in metas] for sid, metas in state["presences"].items()
        }
        assert sorted(names.values()) == [["Alice"], ["Bob"]]
        assert names[first["id"]] == ["Alice"]

        await bob.call("send", said(room, "welcome back"))
        await alice.until("message", lambda d: d["message"] == "welcome back")
        # Exactly what she missed, in order, once each; then the chat goes on.
        assert alice.since(mark, "message") == [
            {"message": f"while away {n}", "author": "Bob"} for n in range(3)
        ] + [{"message": "welcome back", "author": "Bob"}]
        assert alice.since(mark, "announce") == []
        # Every event still carries its offset last, which the page's handlers ignore; but a
        # presence state, which goes to one connection and is never replayed.
        events = [m for m in alice.seen[mark:] if m["type"] == "event"]
        for m in events:
            assert len(m["args"]) == (1 if m["event"] == "presence_state" else 2), m
            assert m["event"] == "presence_state" or isinstance(m["args"][-1], str), m

        # Bob saw her come back into the room under her name, and no newcomer: his own
        # arrival is the one announce he ever got.
        diff = await bob.until("presence_diff", lambda d: d["room"] == room and d["joins"])
        assert [meta["name"] for meta in diff["joins"][first["id"]]] == ["Alice"]
        await bob.until("message", lambda d: d["message"] == "welcome back")
        assert len(bob.since(0, "announce")) == 1


async def test_an_explicit_disconnect_comes_back_afresh(example: str, room: str) -> None:
    async with pages(example) as (alice, bob):
        first = await alice.next("connect")
        await bob.next("connect")
        await alice.call("ready", rooms(room, name="Alice"))
        await bob.call("ready", rooms(room, name="Bob"))

        alice.tell(cmd="reconnect")  # socket.disconnect(), then socket.connect(): asked for
        back = await alice.next("connect")
        assert back["recovered"] is False
        assert back["id"] != first["id"]
        alice.read = mark = len(alice.seen)
        await bob.call("send", said(room, "not for a stranger"))
        # A stranger until it is `ready` again, as the page is on a fresh connection.
        await alice.call("ready", rooms(room, name="Alice"))
        assert (await alice.until("announce"))["message"] == f"New client in the {room} room."
        await bob.call("send", said(room, "hello again"))
        await alice.until("message", lambda d: d["message"] == "hello again")
        assert alice.since(mark, "message") == [{"message": "hello again", "author": "Bob"}]


@pytest.mark.parametrize(
    ("argv", "recovery"),
    [
        ([], RECOVERY),
        (["--recovery", "30"], 30.0),
        (["--recovery", "0"], None),
        # Off by default with Redis (its python-socketio test clients do not expect the
        # offset argument); on when asked for, through any process.
        (["--redis", "redis://127.0.0.1:1/0"], None),
        (["--redis", "redis://127.0.0.1:1/0", "--recovery", "0"], None),
        (["--redis", "redis://127.0.0.1:1/0", "--recovery", "60"], 60.0),
    ],
)
def test_the_command_turns_recovery_on(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], recovery: float | None
) -> None:
    require_socketio_client()
    asked: list[float | None] = []

    def create_asgi_app(app: Any, *, recovery: float | None = None) -> str:
        asked.append(recovery)
        return "asgi app"

    monkeypatch.setattr(command, "create_asgi_app", create_asgi_app)
    monkeypatch.setattr(command.uvicorn, "run", lambda *args, **kwargs: None)
    command.main(argv)
    assert asked == [recovery]


@pytest.mark.parametrize(
    "argv",
    [
        ["--recovery", "-1"],
        ["--recovery", "nan"],
        ["--recovery", "inf"],
    ],
)
def test_the_command_refuses_a_recovery_it_cannot_keep(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    monkeypatch.setattr(command.uvicorn, "run", lambda *args, **kwargs: None)
    with pytest.raises(SystemExit) as exited:
        command.main(argv)
    assert exited.value.code == 2  # argparse's usage error
    assert "--recovery" in capsys.readouterr().err

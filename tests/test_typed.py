"""Typed payloads (SPEC section 10), over both transports. This module's annotations are
strings (`from __future__ import annotations`), as they are in many apps."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from roomcast import App, Request

from .transports import Connect, anyio_backend, asgi_app, connect, setup  # noqa: F401


class ChatMessage(BaseModel):
    room: str
    text: str = Field(max_length=20)


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Move(TypedDict):
    dx: int
    dy: int


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any) -> Any:
        return await func(*args)

    return wrapper


def make_app() -> App:
    app = App()

    @app.route("send")
    async def send(req: Request, msg: ChatMessage) -> ChatMessage:
        assert isinstance(msg, ChatMessage)
        return ChatMessage(room=msg.room, text=msg.text.upper())

    @app.route("point")
    def point(req: Request, p: Point) -> Point:  # plain def: in a worker thread
        return Point(p.y, p.x)

    @app.route("move")
    @logged
    async def move(req: Request, m: Move) -> int:
        return m["dx"] + m["dy"]

    @app.route("sum")
    async def total(req: Request, numbers: list[int]) -> int:
        return sum(numbers)

    @app.route("raw")
    async def raw(req: Request) -> Any:
        return req.data  # untyped handlers are as before

    return app


@pytest.fixture
def app() -> App:
    return make_app()


async def test_a_typed_payload_arrives_validated_and_converted(connect: Connect) -> None:
    async with connect() as client:
        assert await client.call("send", {"room": "r", "text": "hi"}) == {
            "room": "r",
            "text": "HI",
        }
        assert await client.call("point", {"x": "1", "y": 2}) == {"x": 2, "y": 1}
        assert await client.call("move", {"dx": 1, "dy": 2}) == 3
        assert await client.call("sum", [1, "2", 3]) == 6
        assert await client.call("raw", {"any": "thing"}) == {"any": "thing"}


async def test_a_payload_that_fails_gets_invalid_payload_with_details(connect: Connect) -> None:
    async with connect() as client:
        answer = await client.call("send", {"room": 5, "text": "x" * 30})
        error = answer["error"]
        assert error["code"] == "invalid_payload"
        assert [d["loc"] for d in error["details"]] == [["room"], ["text"]]
        assert all(isinstance(d["msg"], str) and d["msg"] for d in error["details"])
        await client.emit("sum", ["a"])
        msg = await client.receive()
        assert msg.event == "error"
        assert msg.data["event"] == "sum"
        assert msg.data["details"][0]["loc"] == [0]
        assert await client.call("sum", [1]) == 1  # the connection goes on


async def test_without_an_annotation_or_with_a_keyword_a_handler_is_untyped() -> None:
    from roomcast.testing import TestClient

    app = App()

    async def echo(req: Request, suffix: str = "!") -> Any:
        return f"{req.data}{suffix}"

    async def loose(req: Request, extra=None) -> Any:
        return [req.data, extra]

    app.route("partial", functools.partial(echo, suffix="?"))  # suffix is keyword-only now
    app.route("loose", loose)
    async with TestClient(app) as client:
        assert await client.call("partial", "x") == "x?"
        assert await client.call("loose", "y") == ["y", None]

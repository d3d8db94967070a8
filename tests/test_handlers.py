"""Handlers, hooks and guards as users write them: decorated, partial, sync or async."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from roomcast import App, JoinRefused, Request, Router
from roomcast._handlers import is_async
from roomcast.testing import TestClient


def logged(func: Callable[..., Any]) -> Callable[..., Any]:
    """An ordinary decorator: a plain `def` wrapper that returns what the function returns."""

    @functools.wraps(func)
    def wrapper(*args: Any) -> Any:
        return func(*args)

    return wrapper


def unwrapped(func: Callable[..., Any]) -> Callable[..., Any]:
    """A careless decorator: no `functools.wraps`, so nothing says the function is async."""

    def wrapper(*args: Any) -> Any:
        return func(*args)

    return wrapper


class Handler:
    async def __call__(self, req: Request) -> Any:
        return "object"


async def echo(req: Request, suffix: str) -> Any:
    return f"{req.data}{suffix}"


def test_what_counts_as_async() -> None:
    async def coro(req: Request) -> None: ...

    def plain(req: Request) -> None: ...

    assert is_async(coro)
    assert is_async(logged(coro))
    assert is_async(logged(logged(coro)))
    assert is_async(functools.partial(echo, suffix="!"))
    assert is_async(Handler())
    assert not is_async(plain)
    assert not is_async(logged(plain))
    assert not is_async(unwrapped(coro))  # run in a thread, its coroutine awaited after


async def test_decorated_handlers_behave_as_the_function_they_wrap() -> None:
    app = App()
    loop_thread = threading.get_ident()
    threads: dict[str, int] = {}

    @app.route("wrapped")
    @logged
    async def wrapped(req: Request) -> Any:
        threads["wrapped"] = threading.get_ident()
        await req.emit("inside", req.data)
        return req.data

    @app.route("careless")
    @unwrapped
    async def careless(req: Request) -> Any:
        return "still awaited"

    @app.route("sync")
    @logged
    def sync(req: Request) -> Any:
        threads["sync"] = threading.get_ident()
        return "from a thread"

    app.route("partial", functools.partial(echo, suffix="!"))
    app.route("object", Handler())

    async with TestClient(app) as client:
        assert await client.call("wrapped", 1) == 1
        assert (await client.receive()).data == 1
        assert await client.call("careless") == "still awaited"
        assert await client.call("sync") == "from a thread"
        assert await client.call("partial", "hi") == "hi!"
        assert await client.call("object") == "object"
    assert threads["wrapped"] == loop_thread
    assert threads["sync"] != loop_thread


async def test_hooks_and_guards_may_be_decorated_or_plain() -> None:
    app = App()
    seen: list[str] = []
    loop_thread = threading.get_ident()
    guard_threads: list[int] = []

    @app.on_connect
    @logged
    async def hello(req: Request) -> None:
        seen.append("connect")

    @app.on_disconnect
    @logged
    def bye(req: Request) -> None:
        seen.append("disconnect")

    def blocking_guard(req: Request, room: str) -> bool:
        guard_threads.append(threading.get_ident())
        return room != "vip:closed"

    app.guard("vip:*", blocking_guard)  # registered directly, as route and on_connect can be

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)

    async with TestClient(app) as client:
        assert await client.call("join", "vip:open") is None
        answer = await client.call("join", "vip:closed")
        assert answer["error"]["code"] == JoinRefused.code
    assert seen == ["connect", "disconnect"]
    assert guard_threads
    assert all(t != loop_thread for t in guard_threads)


@pytest.mark.parametrize("event", ["connect", "disconnect", "error"])
async def test_a_prefixed_router_may_name_reserved_words(event: str) -> None:
    app = App()
    router = Router(prefix="chat")
    router.route(event, lambda req: event)
    app.include_router(router)
    assert app.events == {f"chat:{event}"}
    async with TestClient(app) as client:
        assert await client.call(f"chat:{event}") == event

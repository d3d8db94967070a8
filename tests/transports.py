"""Fixtures that run a module's tests over both transports.

A module imports `setup`, `anyio_backend`, `connect` and, unless it serves the app its own
way, `asgi_app` from here, and provides the fixture `app` (the app under test).
`connect(auth=None)` then opens a client: a `TestClient` (on asyncio and on trio), or a real
python-socketio client against the ASGI app under uvicorn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from roomcast import App
from roomcast.testing import TestClient

Connect = Callable[..., AbstractAsyncContextManager[Any]]


@pytest.fixture(
    params=[("asyncio", "memory"), ("trio", "memory"), ("asyncio", "socketio")],
    ids=["memory-asyncio", "memory-trio", "socketio"],
)
def setup(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def anyio_backend(setup: tuple[str, str]) -> str:
    return setup[0]


@pytest.fixture
async def connect(
    setup: tuple[str, str], app: App, request: pytest.FixtureRequest
) -> AsyncIterator[Connect]:
    if setup[1] == "memory":
        yield lambda auth=None: TestClient(app, auth=auth)
        return
    from .servers import Client, serve

    async with serve(request.getfixturevalue("asgi_app")) as url:
        yield lambda auth=None: Client(url, auth=auth)


@pytest.fixture
def asgi_app(app: App) -> Any:
    """`app` served by a python-socketio server of its own (a module may define its own)."""
    import socketio

    from roomcast.adapters.socketio import attach

    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio)
    return socketio.ASGIApp(sio)

"""Serving roomcast inside FastAPI or Starlette, as documented in docs/fastapi.md: as the
outer app (python-socketio in front) and mounted under a path, with both lifespans running,
under uvicorn, with a real python-socketio client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import socketio
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request as HTTPRequest
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from roomcast import App, Request
from roomcast.adapters.socketio import BodyLimit, attach
from roomcast.backends import MemoryBackend

from .servers import serve


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # python-socketio and uvicorn


class Tracking(MemoryBackend):
    """Records when the app runs its backend (what `async with app:` does)."""

    def __init__(self) -> None:
        self.log: list[str] = []

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        self.log.append("backend up")
        yield
        self.log.append("backend down")


def make_roomcast() -> tuple[App, socketio.AsyncServer, list[str]]:
    backend = Tracking()
    app = App(backend=backend)

    @app.route("echo")
    async def echo(req: Request) -> Any:
        return req.data

    sio = socketio.AsyncServer(async_mode="asgi")
    attach(app, sio)
    return app, sio, backend.log


def make_host(kind: str, app: App, log: list[str], mount: Any = None) -> Any:
    """A FastAPI or Starlette app whose own lifespan runs roomcast's, with a health route."""

    @asynccontextmanager
    async def lifespan(host: Any) -> AsyncIterator[None]:
        log.append("host up")
        async with app:
            yield
        log.append("host down")

    if kind == "fastapi":
        api = FastAPI(lifespan=lifespan)

        @api.get("/health")
        async def health() -> dict[str, bool]:
            return {"ok": True}

        if mount is not None:
            api.mount("/ws", mount)
        return api

    async def health_route(request: HTTPRequest) -> JSONResponse:
        return JSONResponse({"ok": True})

    routes: list[Any] = [Route("/health", health_route)]
    if mount is not None:
        routes.append(Mount("/ws", mount))
    return Starlette(routes=routes, lifespan=lifespan)


async def use(url: str, socketio_path: str) -> tuple[Any, Any]:
    """The health route's answer and an echo over Socket.IO."""
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        health = await response.json()
    client = socketio.AsyncClient()
    await client.connect(url, socketio_path=socketio_path, transports=["websocket"])
    try:
        echoed = await client.call("echo", "hi", timeout=5)
    finally:
        await client.disconnect()
    return health, echoed


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
async def test_socketio_in_front_of_the_host_app(kind: str) -> None:
    app, sio, log = make_roomcast()
    host = make_host(kind, app, log)
    # No on_startup/on_shutdown here: python-socketio then hands the lifespan to the host.
    asgi = BodyLimit(socketio.ASGIApp(sio, other_asgi_app=host))
    async with serve(asgi) as url:
        assert log == ["host up", "backend up"]
        assert await use(url, "socket.io") == ({"ok": True}, "hi")
    assert log == ["host up", "backend up", "backend down", "host down"]


@pytest.mark.parametrize("kind", ["fastapi", "starlette"])
async def test_socketio_mounted_under_a_path(kind: str) -> None:
    app, sio, log = make_roomcast()
    # A mounted app's own lifespan never runs: the host's runs roomcast's. Mounted apps see
    # the whole path, so socketio_path names the mount too.
    mounted = socketio.ASGIApp(sio, socketio_path="/ws/socket.io")
    host = BodyLimit(make_host(kind, app, log, mount=mounted))
    async with serve(host) as url:
        assert log == ["host up", "backend up"]
        assert await use(url, "/ws/socket.io") == ({"ok": True}, "hi")
    assert log == ["host up", "backend up", "backend down", "host down"]

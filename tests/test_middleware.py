"""Middleware around every event's handler, and the fallback for unrouted events, over both
transports (the in-memory one on asyncio and trio, and real python-socketio)."""

from __future__ import annotations

from typing import Any

import pytest

from roomcast import App, CallNext, InvalidPayload, Request, RouteConflict

from .transports import Connect, anyio_backend, asgi_app, connect, setup  # noqa: F401


def make_app() -> App:
    app = App()
    trail: list[str] = []
    app.state = trail  # type: ignore[attr-defined]

    @app.middleware
    async def outer(req: Request, call_next: CallNext) -> Any:
        trail.append(f"outer>{req.event}")
        try:
            return await call_next()
        finally:
            trail.append(f"outer<{req.event}")

    @app.middleware
    async def gate(req: Request, call_next: CallNext) -> Any:
        trail.append(f"gate>{req.event}")
        if req.event == "cached":
            return "from the middleware"  # the ack, without the handler
        if req.event == "forbidden":
            raise InvalidPayload("not here")
        result = await call_next()
        return {"wrapped": result} if req.event == "wrapped" else result

    @app.route("echo")
    async def echo(req: Request) -> Any:
        trail.append("echo")
        return req.data

    @app.route("wrapped")
    async def wrapped(req: Request) -> Any:
        return req.data

    @app.route("cached")
    async def cached(req: Request) -> Any:
        raise AssertionError("never reached")

    @app.fallback
    async def anything(req: Request) -> Any:
        return {"unrouted": req.event, "data": req.data}

    return app


@pytest.fixture
def app() -> App:
    return make_app()


async def test_middleware_runs_around_the_handler_first_registered_outermost(
    connect: Connect, app: App
) -> None:
    async with connect() as client:
        assert await client.call("echo", 1) == 1
    assert app.state == ["outer>echo", "gate>echo", "echo", "outer<echo"]  # type: ignore[attr-defined]


async def test_middleware_may_change_the_ack_or_answer_alone(connect: Connect) -> None:
    async with connect() as client:
        assert await client.call("wrapped", 2) == {"wrapped": 2}
        assert await client.call("cached") == "from the middleware"


async def test_middleware_may_refuse_an_event(connect: Connect) -> None:
    async with connect() as client:
        answer = await client.call("forbidden")
        assert answer == {"error": {"code": "invalid_payload", "message": "not here"}}
        assert await client.call("echo", "still open") == "still open"


async def test_the_fallback_handles_what_no_route_names(connect: Connect) -> None:
    async with connect() as client:
        assert await client.call("nope", [1]) == {"unrouted": "nope", "data": [1]}


async def test_without_a_fallback_an_unknown_event_goes_through_middleware_as_an_error() -> None:
    from roomcast.testing import TestClient

    app = App()
    seen: list[str] = []

    @app.middleware
    async def log(req: Request, call_next: CallNext) -> Any:
        try:
            return await call_next()
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise

    async with TestClient(app) as client:
        answer = await client.call("nope")
    assert answer["error"]["code"] == "unknown_event"
    assert seen == ["UnknownEvent"]


def test_registration_mistakes_are_refused() -> None:
    app = App()

    def plain(req: Request, call_next: CallNext) -> Any:
        return None

    with pytest.raises(TypeError, match="async"):
        app.middleware(plain)  # type: ignore[arg-type]
    app.fallback(lambda req: None)
    with pytest.raises(RouteConflict, match="fallback"):
        app.fallback(lambda req: None)

import pytest

from roomcast import App, InvalidRoute, Request, RouteConflict, Router
from roomcast.testing import TestClient


async def test_decorator_and_direct_registration() -> None:
    app = App()

    @app.route("a")
    async def a(req: Request) -> str:
        return "from a"

    async def b(req: Request) -> str:
        return "from b"

    app.route("b", b)
    async with TestClient(app) as client:
        assert await client.call("a") == "from a"
        assert await client.call("b") == "from b"


async def test_nested_routes_dict() -> None:
    app = App()

    async def create(req: Request) -> str:
        return f"created {req.data}"

    async def update(req: Request) -> str:
        return f"updated {req.data}"

    async def archive(req: Request) -> str:
        return "archived"

    app.route("customers", {"create": create, "update": update, "old": {"archive": archive}})
    assert app.events == {"customers:create", "customers:update", "customers:old:archive"}
    async with TestClient(app) as client:
        assert await client.call("customers:create", "ann") == "created ann"
        assert await client.call("customers:update", "bob") == "updated bob"
        assert await client.call("customers:old:archive") == "archived"
        assert (await client.call("customers"))["error"]["code"] == "unknown_event"


async def test_router_with_prefix_included() -> None:
    chat = Router(prefix="chat")

    @chat.route("send")
    async def send(req: Request) -> str:
        return f"sent {req.data}"

    inner = Router(prefix="admin")

    @inner.route("kick")
    async def kick(req: Request) -> str:
        return "kicked"

    chat.include_router(inner)
    app = App()
    app.include_router(chat)
    assert app.events == {"chat:send", "chat:admin:kick"}
    async with TestClient(app) as client:
        assert await client.call("chat:send", "x") == "sent x"
        assert await client.call("chat:admin:kick") == "kicked"


def test_conflicts_and_bad_registrations() -> None:
    app = App()
    app.route("a", lambda req: None)
    with pytest.raises(RouteConflict):
        app.route("a", lambda req: None)
    router = Router(prefix="x")
    router.route("a", lambda req: None)
    app.route("x:a", lambda req: None)
    with pytest.raises(RouteConflict):
        app.include_router(router)
    for reserved in ("connect", "disconnect", "error"):
        with pytest.raises(InvalidRoute, match="reserved"):
            app.route(reserved, lambda req: None)
    with pytest.raises(InvalidRoute, match="non-empty"):
        app.route("", lambda req: None)
    with pytest.raises(InvalidRoute, match="not callable"):
        app.route("b", "not callable")  # type: ignore[arg-type]


async def test_plain_def_handlers_run_in_a_thread_and_may_return_the_ack() -> None:
    import threading

    app = App()
    loop_thread = threading.get_ident()
    seen: list[int] = []

    @app.route("add")
    def add(req: Request) -> int:
        seen.append(threading.get_ident())
        return int(req.data["a"] + req.data["b"])

    async with TestClient(app) as client:
        assert await client.call("add", {"a": 2, "b": 3}) == 5
    assert seen
    assert seen[0] != loop_thread


async def test_route_forwards_the_same_request() -> None:
    app = App()

    @app.route("first")
    async def first(req: Request) -> None:
        req.session["visited"] = "first"
        await req.route("second")

    @app.route("second")
    async def second(req: Request) -> None:
        await req.respond({"event": req.event, "data": req.data, "via": req.session["visited"]})

    @app.route("lost")
    async def lost(req: Request) -> None:
        await req.route("nowhere")

    async with TestClient(app) as client:
        assert await client.call("first", 7) == {"event": "first", "data": 7, "via": "first"}
        assert (await client.call("lost"))["error"]["code"] == "unknown_event"


async def test_a_handler_without_respond_still_acknowledges() -> None:
    app = App()

    @app.route("quiet")
    async def quiet(req: Request) -> None:
        pass

    async with TestClient(app) as client:
        assert await client.call("quiet") is None


async def test_only_the_first_response_counts() -> None:
    app = App()

    @app.route("twice")
    async def twice(req: Request) -> str:
        await req.respond("first")
        await req.respond("second")
        return "third"

    async with TestClient(app) as client:
        assert await client.call("twice") == "first"
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.1)

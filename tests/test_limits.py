from typing import Any

import pytest

from roomcast import App, JoinRefused, Limits, Request
from roomcast._limits import TokenBucket, check_payload
from roomcast.testing import TestClient


def make_app(limits: Limits | None = None) -> App:
    app = App(limits=limits)

    @app.route("echo")
    async def echo(req: Request) -> Any:
        return req.data

    @app.route("join")
    async def join(req: Request) -> Any:
        for room in req.data:
            await req.join(room)
        return sorted(req.rooms)

    @app.route("try_join")
    async def try_join(req: Request) -> Any:
        try:
            await req.join(req.data)
        except JoinRefused as exc:
            return f"refused: {exc}"
        return "joined"

    return app


def code(answer: Any) -> str:
    return str(answer["error"]["code"])


async def test_event_name_too_long() -> None:
    app = make_app(Limits(max_event_name=10))
    async with TestClient(app) as client:
        assert code(await client.call("e" * 11)) == "too_large"
        assert code(await client.call("e" * 10)) == "unknown_event"  # within the limit
        await client.emit("x" * 11)
        msg = await client.receive()
        assert (msg.event, msg.data["code"]) == ("error", "too_large")
    assert app.stats.too_large == 2


async def test_payload_too_large_or_too_deep() -> None:
    app = make_app(Limits(max_payload=1000, max_depth=5))
    async with TestClient(app) as client:
        assert await client.call("echo", "a" * 900) == "a" * 900
        assert code(await client.call("echo", "a" * 1001)) == "too_large"
        assert code(await client.call("echo", {"k": ["a" * 300] * 4})) == "too_large"
        nested: Any = "leaf"
        for _ in range(6):
            nested = [nested]
        assert code(await client.call("echo", nested)) == "too_large"
        assert await client.call("echo", nested[0]) == nested[0]  # five levels: fine
        assert await client.call("echo", 12345) == 12345


def test_check_payload_counts_like_json() -> None:
    check_payload({"a": "x" * 90}, 100, None)
    with pytest.raises(Exception, match="at most 100 bytes"):
        check_payload({"a": "x" * 100}, 100, None)
    check_payload([[[[]]]], None, 4)
    with pytest.raises(Exception, match="4 levels"):
        check_payload([[[[[]]]]], None, 4)
    check_payload({"huge": "x" * 10_000_000}, None, None)  # limits off


async def test_rooms_per_connection() -> None:
    app = make_app(Limits(max_rooms=3))
    async with TestClient(app) as client:
        assert await client.call("join", ["a", "b", "c"]) == ["a", "b", "c"]
        assert await client.call("join", ["a"]) == ["a", "b", "c"]  # already in: fine
        assert code(await client.call("join", ["d"])) == "too_many_rooms"
        assert await app.rooms_of(client.sid) == {"a", "b", "c"}


async def test_rate_limit_refuses_the_excess_then_recovers() -> None:
    now = [100.0]
    app = make_app(Limits(rate=20, burst=5))
    app.hub.clock = lambda: now[0]  # what App(clock=...) sets: no wall clock in this test
    async with TestClient(app) as client:
        answers = [await client.call("echo", n) for n in range(8)]
        assert answers[:5] == [0, 1, 2, 3, 4]
        assert all(code(a) == "rate_limited" for a in answers[5:])
        assert app.stats.rate_limited == 3
        now[0] += 0.15  # 20 per second: 3 tokens back
        answers = [await client.call("echo", n) for n in range(4)]
        assert answers[:3] == [0, 1, 2]
        assert code(answers[3]) == "rate_limited"
        assert app.stats.rate_limited == 4


async def test_the_rate_limiter_reads_the_clock_it_is_given() -> None:
    now = [0.0]
    app = App(limits=Limits(rate=1, burst=1), clock=lambda: now[0])

    @app.route("echo")
    async def echo(req: Request) -> Any:
        return req.data

    async with TestClient(app) as client:
        assert await client.call("echo", 1) == 1
        assert code(await client.call("echo", 2)) == "rate_limited"
        now[0] = 1.0
        assert await client.call("echo", 3) == 3


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(0.5)  # one token back after half a second
    assert not bucket.take(0.5)
    assert [bucket.take(10.0) for _ in range(4)] == [True, True, True, False]  # capped at burst


async def test_limits_off() -> None:
    app = make_app(
        Limits(max_event_name=None, max_payload=None, max_depth=None, max_rooms=None, rate=None)
    )
    async with TestClient(app) as client:
        for n in range(300):
            await client.emit("echo", n)
        assert await client.call("echo", "x" * 200_000) == "x" * 200_000
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.05)  # none of the 300 was refused
    assert app.stats.rate_limited == 0


def test_bad_limits() -> None:
    with pytest.raises(ValueError, match="slow_consumer"):
        Limits(slow_consumer="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="rate"):
        Limits(rate=0)


async def test_guards_allow_and_refuse_by_pattern() -> None:
    app = make_app()

    @app.on_connect
    async def who(req: Request) -> None:
        req.session["role"] = req.data

    @app.guard("admin:*")
    async def admins_only(req: Request, room: str) -> bool:
        return bool(req.session["role"] == "admin")

    @app.guard("*:readonly")
    def nobody(req: Request, room: str) -> bool:
        return False

    async with TestClient(app, auth="admin") as admin, TestClient(app, auth="guest") as guest:
        assert await admin.call("join", ["admin:ops"]) == ["admin:ops"]
        assert await guest.call("join", ["lobby"]) == ["lobby"]
        answer = await guest.call("join", ["admin:ops"])
        assert answer == {
            "error": {
                "code": "forbidden",
                "message": "Joining the room 'admin:ops' is not allowed.",
            }
        }
        assert await guest.call("try_join", "admin:x") == (
            "refused: Joining the room 'admin:x' is not allowed."
        )
        assert code(await admin.call("join", ["admin:readonly"])) == "forbidden"
        assert await app.room("admin:ops").members() == {admin.sid}
        assert await app.rooms_of(guest.sid) == {"lobby"}


async def test_a_guard_may_refuse_with_its_own_message() -> None:
    app = make_app()

    @app.guard("vip")
    async def vip(req: Request, room: str) -> bool:
        raise JoinRefused("Members only.")

    async with TestClient(app) as client:
        answer = await client.call("join", ["vip"])
        assert answer == {"error": {"code": "forbidden", "message": "Members only."}}


@pytest.mark.parametrize(
    "payload",
    ["\ud800", {"room": "a\udfffb"}, ["ok", ["\udc00"]], {"\ud83d": 1}],
    ids=["string", "in-dict", "nested", "key"],
)
async def test_text_that_is_not_unicode_is_refused(payload: object) -> None:
    app = make_app()
    async with TestClient(app) as client:
        answer = await client.call("echo", payload)
        assert code(answer) == "invalid_payload"
        assert await client.call("echo", "é 🎉") == "é 🎉"  # real Unicode passes


async def test_an_event_name_that_is_not_unicode_is_refused() -> None:
    app = make_app()
    async with TestClient(app) as client:
        assert code(await client.call("ec\udc00ho", 1)) == "invalid_payload"
        assert await client.call("echo", 1) == 1

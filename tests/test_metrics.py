"""Prometheus metrics of an app, as a scrape reads them."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from roomcast import App, InvalidPayload, Limits, Request
from roomcast.backends.redis import RedisBackend
from roomcast.metrics import instrument
from roomcast.testing import TestClient

from .redis_support import REDIS_URL, drop_prefix, fresh_prefix, require_redis


def scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    text = generate_latest(registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def make_app(**options: object) -> App:
    app = App(**options)  # type: ignore[arg-type]

    @app.route("join")
    async def join(req: Request) -> None:
        await req.join(req.data)
        await app.room(req.data).broadcast("joined", req.sid)

    @app.route("bad")
    async def bad(req: Request) -> None:
        raise InvalidPayload("no")

    return app


async def test_a_scrape_reads_connections_rooms_events_and_deliveries() -> None:
    app = make_app(limits=Limits(max_payload=100))
    registry = CollectorRegistry()
    instrument(app, registry)
    async with TestClient(app) as ann, TestClient(app) as bob:
        await ann.call("join", "r")
        await bob.call("join", "r")
        await ann.call("bad")
        await ann.call("no such event, with a name a client chose")
        await ann.call("join", "x" * 200)  # too large
        metrics = scrape(registry)
        assert metrics[("roomcast_connections", ())] == 2
        assert metrics[("roomcast_rooms", ())] == 1
        events = {
            labels: value
            for (name, labels), value in metrics.items()
            if name == "roomcast_events_total"
        }
        assert events == {
            (("event", "join"), ("outcome", "ok")): 2,
            (("event", "bad"), ("outcome", "invalid_payload")): 1,
            (("event", ""), ("outcome", "unknown_event")): 1,  # unrouted: no new series
            (("event", "join"), ("outcome", "too_large")): 1,
        }
        assert metrics[("roomcast_deliveries_total", ())] == 3  # 1 + 2 "joined"
        assert metrics[("roomcast_too_large_total", ())] == 1
        assert metrics[("roomcast_slow_consumers_disconnected_total", ())] == 0
    assert scrape(registry)[("roomcast_connections", ())] == 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_redis_backend_reports_its_own() -> None:
    require_redis()
    prefix = fresh_prefix()
    try:
        app = make_app(backend=RedisBackend(REDIS_URL, prefix=prefix))
        registry = CollectorRegistry()
        instrument(app, registry)
        async with app, TestClient(app) as client:
            await client.call("join", "r")
            metrics = scrape(registry)
            assert metrics[("roomcast_backend_available", ())] == 1
            assert metrics[("roomcast_backend_healthy", ())] == 1
            assert metrics[("roomcast_backend_publish_failures_total", ())] == 0
            assert metrics[("roomcast_backend_outbox", ())] >= 0
            assert metrics[("roomcast_backend_publish_lag_seconds", ())] >= 0
    finally:
        drop_prefix(prefix)


async def test_the_stats_stay_json() -> None:
    """`app.stats` as a dict goes through JSON, as an app that reports it in an event does."""
    import dataclasses
    import json

    app = make_app()
    async with TestClient(app) as client:
        await client.call("join", "r")
        await client.call("bad")
    stats = json.loads(json.dumps(dataclasses.asdict(app.stats)))
    assert stats["events"] == {"join": {"ok": 1}, "bad": {"invalid_payload": 1}}

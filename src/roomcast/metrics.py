"""Prometheus metrics of an app (extra `roomcast[prometheus]`, on prometheus_client).

```python
from prometheus_client import make_asgi_app
from roomcast.metrics import instrument

instrument(app)                    # into prometheus_client's default registry
metrics_app = make_asgi_app()      # serve it at /metrics
```

The collector reads the app when it is scraped: nothing is done per event beyond the counts
the app keeps anyway (`app.stats`). It exports `roomcast_connections` and `roomcast_rooms`
(gauges of this process), `roomcast_events_total{event, outcome}` (by route, `""` for events no
route names so that clients cannot make new series, and `ok` or the error's code),
`roomcast_deliveries_total`, what was shed, dropped or refused (`app.stats`), and
`roomcast_backend_<name>` for what the backend reports (`Backend.metrics()`). The table is in
docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator

try:
    from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric
    from prometheus_client.registry import Collector, CollectorRegistry
except ImportError as exc:
    raise ImportError(
        f"roomcast.metrics needs prometheus_client ({exc.name} is missing): "
        "pip install 'roomcast[prometheus]'"
    ) from exc

from ._app import App

__all__ = ["AppCollector", "instrument"]

_STATS = {
    "slow_consumers_disconnected": "Connections shed for not reading what they were sent.",
    "events_dropped": "Events dropped from the queues of slow readers.",
    "rate_limited": "Events refused for coming too fast.",
    "too_large": "Events refused for a name or payload over the limits.",
    "malformed": "Packets that could not be parsed, or were no event.",
    "refused_connections": "Connections closed for what they sent.",
}


class AppCollector(Collector):
    """A prometheus_client collector of one app's metrics, read when scraped."""

    def __init__(self, app: App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app, stats = self.app, self.app.stats
        yield GaugeMetricFamily(
            "roomcast_connections", "Open connections of this process.", len(app.connections)
        )
        yield GaugeMetricFamily(
            "roomcast_rooms", "Rooms with members on this process.", len(app.hub.index)
        )
        events = CounterMetricFamily(
            "roomcast_events", "Events handled, by route and outcome.", labels=["event", "outcome"]
        )
        for event, outcomes in list(stats.events.items()):
            for outcome, count in list(outcomes.items()):
                events.add_metric([event, outcome], count)
        yield events
        yield CounterMetricFamily(
            "roomcast_deliveries",
            "Events handed to a connection's transport, one per receiver.",
            stats.deliveries,
        )
        for name, documentation in _STATS.items():
            yield CounterMetricFamily(f"roomcast_{name}", documentation, getattr(stats, name))
        for name, value in app.backend.metrics().items():
            if name.endswith("_total"):
                yield CounterMetricFamily(
                    f"roomcast_backend_{name.removesuffix('_total')}",
                    f"{type(app.backend).__name__}: {name}.",
                    value,
                )
            else:
                yield GaugeMetricFamily(
                    f"roomcast_backend_{name}", f"{type(app.backend).__name__}: {name}.", value
                )


def instrument(app: App, registry: CollectorRegistry = REGISTRY) -> AppCollector:
    """Register `app`'s metrics in `registry` (prometheus_client's default one unless given);
    return the collector (`registry.unregister(collector)` takes it out)."""
    collector = AppCollector(app)
    registry.register(collector)
    return collector

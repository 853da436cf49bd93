"""`/metrics` of `textgen serve`, in Prometheus's text format, with the
`prometheus_client` library (the serve extra): requests by model and status,
their latency, tokens generated, and each model's queue and batch as they
are when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from operator import attrgetter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: a short completion takes milliseconds, 4,096 tokens of 256 rows
# minutes.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class ServerMetrics:
    """One server's metrics, in a registry of its own (so several apps in one
    process do not mix theirs)."""

    def __init__(self, served: Mapping[str, Any]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "textgen_requests",
            "Completion requests answered, by model and HTTP status.",
            ["model", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "textgen_request_duration_seconds",
            "Seconds from a completion request's arrival to its answer's end.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_EngineCollector(lambda: served))

    def observe(self, model: str, status: int, seconds: float) -> None:
        """One answered completion request."""
        self.requests.labels(model=model, status=str(status)).inc()
        self.latency.labels(model=model).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


# name -> (help, the `Served` or engine attribute it reads) of what is read
# at scrape time: gauges, then counters.
_GAUGES = {
    "queue_depth": ("Requests waiting for room in the batch.", "queued"),
    "batch_rows": ("Rows in the running batch.", "engine.active_rows"),
}
_COUNTERS = {
    "tokens_generated": (
        "Tokens generated (those of rejected draws too).",
        "engine.tokens",
    ),
    "decoder_steps": ("Decoder steps run, each over the whole batch.", "engine.steps"),
    "requests_cancelled": (
        "Requests dropped because their client left.",
        "engine.cancelled",
    ),
    "requests_timed_out": (
        "Requests ended at the server's --timeout.",
        "engine.timed_out",
    ),
}


class _EngineCollector(Collector):
    """Each model's engine as it is at scrape time."""

    def __init__(self, served: Callable[[], Mapping[str, Any]]) -> None:
        self.served = served

    def collect(self) -> Iterator[Any]:
        for kinds, family_of in (
            (_GAUGES, GaugeMetricFamily),
            (_COUNTERS, CounterMetricFamily),
        ):
            for name, (text, attribute) in kinds.items():
                family = family_of(f"textgen_{name}", text, labels=["model"])
                for model, served in self.served().items():
                    family.add_metric([model], float(attrgetter(attribute)(served)))
                yield family

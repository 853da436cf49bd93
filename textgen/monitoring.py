"""`/metrics` of `textgen serve`, in Prometheus's text format, with the
`prometheus_client` library (the serve extra): requests by model and status,
their latency, tokens generated, and each model's queue and batch as they
are when scraped."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
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


class _EngineCollector(Collector):
    """Each model's engine as it is at scrape time."""

    def __init__(self, served: Callable[[], Mapping[str, Any]]) -> None:
        self.served = served

    def collect(self) -> Iterator[Any]:
        gauges = {
            "queue_depth": ("Requests waiting for room in the batch.", "queued"),
            "batch_rows": ("Rows in the running batch.", "active_rows"),
        }
        counters = {
            "tokens_generated": "Tokens generated (every row's, every draw's).",
            "decoder_steps": "Decoder steps run, each over the whole batch.",
            "requests_cancelled": "Requests dropped because their client left.",
            "requests_timed_out": "Requests ended at the server's --timeout.",
        }
        for name, (text, attribute) in gauges.items():
            family = GaugeMetricFamily(f"textgen_{name}", text, labels=["model"])
            for model, served in self.served().items():
                family.add_metric([model], _value(served, attribute))
            yield family
        for name, text in counters.items():
            family = CounterMetricFamily(f"textgen_{name}", text, labels=["model"])
            for model, served in self.served().items():
                family.add_metric([model], _value(served, name))
            yield family


def _value(served: Any, name: str) -> float:
    engine = served.engine
    return float(
        {
            "queued": lambda: served.queued,
            "active_rows": lambda: engine.active_rows,
            "tokens_generated": lambda: engine.tokens,
            "decoder_steps": lambda: engine.steps,
            "requests_cancelled": lambda: engine.cancelled,
            "requests_timed_out": lambda: engine.timed_out,
        }[name]()
    )

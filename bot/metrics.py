"""Prometheus metrics: one registry, the names ops will alert on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLBACKS = Counter(
    "mofan_callbacks_total", "Inbound callbacks by outcome", ["outcome"], registry=REGISTRY
)
HANDLER_SECONDS = Histogram(
    "mofan_handler_seconds",
    "Time to route and answer one inbound message",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
OUTBOX_DEPTH = Gauge("mofan_outbox_depth", "Messages pending or claimed", registry=REGISTRY)
OUTBOX_OLDEST_AGE = Gauge(
    "mofan_outbox_oldest_age_seconds",
    "Age of the oldest due message not yet sent",
    registry=REGISTRY,
)
SENDS = Counter("mofan_sends_total", "Outbox sends by result", ["result"], registry=REGISTRY)
TOKEN_REFRESHES = Counter(
    "mofan_token_refreshes_total", "WeCom access-token fetches", registry=REGISTRY
)

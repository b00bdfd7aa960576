"""Prometheus metrics: one registry, the names ops will alert on."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

CALLBACKS = Counter(
    "mofan_callbacks_total", "Inbound callbacks by outcome", ["outcome"], registry=REGISTRY
)
CALLBACK_HANDOVERS = Counter(
    "mofan_callback_handovers_total",
    "Quick messages handed from the event loop to a handler thread (a lock was held elsewhere)",
    registry=REGISTRY,
)
HANDLER_SECONDS = Histogram(
    "mofan_handler_seconds",
    "Time to route and answer one inbound message",
    buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
# Gauges say how several worker processes add up (prometheus-client multiprocess mode; ignored
# in one process): the outbox is read from the database, so the latest reading is the truth.
OUTBOX_DEPTH = Gauge(
    "mofan_outbox_depth",
    "Messages pending or claimed",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE = Gauge(
    "mofan_outbox_oldest_age_seconds",
    "Age of the oldest due message not yet sent",
    registry=REGISTRY,
    multiprocess_mode="mostrecent",
)
SENDS = Counter("mofan_sends_total", "Outbox sends by result", ["result"], registry=REGISTRY)
TOKEN_REFRESHES = Counter(
    "mofan_token_refreshes_total", "WeCom access-token fetches", registry=REGISTRY
)

# WeCom
WECOM_API_SECONDS = Histogram(
    "mofan_wecom_api_seconds",
    "WeCom API call time by API",
    ["api"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=REGISTRY,
)
WECOM_API_ERRORS = Counter(
    "mofan_wecom_api_errors_total",
    "WeCom API answers with a non-zero errcode (or no answer: transport, httpNNN)",
    ["api", "errcode"],
    registry=REGISTRY,
)
CALLBACK_INFLIGHT = Gauge(
    "mofan_callback_inflight",
    "Callbacks being handled right now",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)

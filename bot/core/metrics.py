"""Prometheus metrics, exposed at ``GET /metrics``."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest

INBOUND = Counter("everycsr_inbound_messages", "Inbound messages processed (duplicates excluded)", ["channel"])
DUPLICATES = Counter("everycsr_duplicate_messages", "Inbound messages dropped as channel retries", ["channel"])
DEDUP_TAKEOVERS = Counter(
    "everycsr_dedup_takeovers",
    "Messages taken over by a retry after the worker processing them stopped renewing its lease",
    ["channel"],
)
DEDUP_LEASE_LOST = Counter(
    "everycsr_dedup_lease_lost",
    "Messages whose worker found them taken over when it finished (it stalled past its lease)",
    ["channel"],
)
RECOVERED_ANSWERS = Counter(
    "everycsr_recovered_answers",
    "Retries answered from the transcript: the answer recorded there (dedup key lost), or "
    "answered now because the first worker died between recording the message and its answer",
    ["channel", "how"],
)
ANSWERS = Counter("everycsr_answers", "Replies by kind (answer, suggest, none, ...)", ["channel", "kind"])
LATENCY = Histogram(
    "everycsr_answer_latency_seconds",
    "Time from an inbound message to its replies being ready",
    ["channel"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
SECURITY_REFUSALS = Counter(
    "everycsr_security_refusals",
    "Requests refused by a security control (docs/security.md)",
    ["reason"],  # wechat_plaintext, wechat_replay, login_locked, login_csrf, login_busy
)
OUTBOX_SENT = Counter("everycsr_outbox_sent", "Outbox messages sent", ["channel"])
OUTBOX_FAILED = Counter("everycsr_outbox_failures", "Outbox send failures", ["channel", "kind"])
OUTBOX_RECLAIMED = Counter(
    "everycsr_outbox_reclaimed",
    "Outbox messages taken back after their sending lease expired (the sending worker was lost)",
    ["channel"],
)
OUTBOX_PENDING = Gauge("everycsr_outbox_pending", "Outbox messages waiting to be sent")
FANOUT_DROPPED = Counter(
    "everycsr_fanout_dropped_events",
    "Fan-out events dropped because a subscriber fell a full queue behind",
    ["topic"],
)
HANDLER_ERRORS = Counter("everycsr_handler_errors", "Messages whose handler raised", ["channel"])
GROUP_COMMIT_JOBS = Histogram(
    "everycsr_db_group_commit_jobs",
    "Messages' write jobs committed together in one transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)


def render() -> tuple[bytes, str]:
    return generate_latest(), CONTENT_TYPE_LATEST

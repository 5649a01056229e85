"""Deliver: the outbox, the worker that drains it, and the channels it sends through.

Decide queues actions with :func:`enqueue` inside its own transaction; a
worker (:func:`run_worker`, ``tenure worker``) claims them under a lease,
re-checks consent, sends through a channel and records every attempt.
Delivery is at least once: an action whose worker was lost mid-send is sent
again with the same idempotency key (the email's Message-ID, the webhook's
Idempotency-Key) so the receiver can drop the copy.
"""

from tenure.deliver._channels import (
    CsmTaskChannel,
    InAppChannel,
    NetworkChannel,
    SmtpChannel,
    StoreChannel,
    WebhookChannel,
    build_channels,
    sign_webhook,
    verify_webhook_signature,
)
from tenure.deliver._outbox import (
    Attempt,
    AttemptOutcome,
    Claimed,
    Delivery,
    OutboxStatus,
    RetryPolicy,
    claim,
    delivery_attempts_of,
    enqueue,
    get_delivery,
    list_deliveries,
    mark_cancelled,
    mark_failed,
    mark_sent,
    release,
    retry_dead,
)
from tenure.deliver._worker import DeliveryCounts, Worker, default_worker_id, run_worker
from tenure.errors import DeliveryError, SendError

__all__ = [
    "Attempt",
    "AttemptOutcome",
    "Claimed",
    "CsmTaskChannel",
    "Delivery",
    "DeliveryCounts",
    "DeliveryError",
    "InAppChannel",
    "NetworkChannel",
    "OutboxStatus",
    "RetryPolicy",
    "SendError",
    "SmtpChannel",
    "StoreChannel",
    "WebhookChannel",
    "Worker",
    "build_channels",
    "claim",
    "default_worker_id",
    "delivery_attempts_of",
    "enqueue",
    "get_delivery",
    "list_deliveries",
    "mark_cancelled",
    "mark_failed",
    "mark_sent",
    "release",
    "retry_dead",
    "run_worker",
    "sign_webhook",
    "verify_webhook_signature",
]

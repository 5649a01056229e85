"""Settings of ``tenure serve``: where it listens, collection limits, the loader, keys, tracing.

Kept apart from :mod:`tenure.config`, which includes them as the ``serve`` section.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, ConfigDict, Field

from tenure._config_decide import Duration

__all__ = ["ServeSettings", "Tracing"]


class Tracing(enum.StrEnum):
    NONE = "none"
    CONSOLE = "console"  # spans printed as JSON on standard error
    OTLP = "otlp"  # OTLP over HTTP to otlp_endpoint (needs opentelemetry-exporter-otlp)


class ServeSettings(BaseModel):
    """The HTTP API."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: Segment's limits: one event, and one request body (after gunzip).
    max_event_bytes: int = Field(default=32 * 1024, gt=0)
    max_batch_bytes: int = Field(default=500 * 1024, gt=0)
    #: The background loader moves acknowledged events from the inbox to the lake.
    loader: bool = True
    loader_interval: Duration = "5s"
    loader_batch: int = Field(default=50_000, gt=0)
    #: How long loaded events stay in the inbox, so a late retry is still a no-op there.
    dedupe_window: Duration = "7d"
    #: Requests per second each API key may make (a token bucket of rate_burst).
    rate_limit: float = Field(default=500.0, gt=0)
    rate_burst: int = Field(default=1000, gt=0)
    #: How long an authenticated key is remembered; a key revoked by another
    #: process stops working within this time (one revoked through the API, at once).
    key_cache_seconds: float = Field(default=5.0, ge=0)
    #: Environment variable with the key PII is pseudonymized with for the analyst role.
    pseudonym_secret_env: str = "TENURE_PSEUDONYM_SECRET"  # noqa: S105 (a variable name)
    #: Webhook signing secrets, by environment variable name (never the secret itself).
    stripe_secret_env: str = "TENURE_STRIPE_WEBHOOK_SECRET"  # noqa: S105
    stripe_tolerance: Duration = "5m"
    #: HubSpot's and Zendesk's webhooks may be signed instead of carrying an API key:
    #: the app's client secret, and the Zendesk webhook's signing secret.
    hubspot_secret_env: str = "TENURE_HUBSPOT_CLIENT_SECRET"  # noqa: S105
    zendesk_secret_env: str = "TENURE_ZENDESK_WEBHOOK_SECRET"  # noqa: S105
    tracing: Tracing = Tracing.NONE
    otlp_endpoint: str = "http://127.0.0.1:4318/v1/traces"
    #: Structured JSON logs of every request (with its request id) on standard error.
    access_log: bool = True

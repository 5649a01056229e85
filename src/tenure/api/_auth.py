"""Who is calling: API keys from the Authorization header, scopes per route, rate limits.

A key is presented as ``Authorization: Bearer <key>`` or, as the Segment and
RudderStack SDKs send their write key, as the user name of HTTP basic auth
(``Basic base64(key + ":")``). A missing or unknown key is 401, a key whose
role lacks the route's scope is 403; neither ever reaches a route's code.

Keys are looked up in the store and remembered for ``key_cache_seconds`` so a
busy collector does not pay a query per request; a revocation made through
this server takes effect at once, one made elsewhere within that time.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.security import HTTPBasic, HTTPBearer
from starlette.concurrency import run_in_threadpool

from tenure.api._errors import ApiError
from tenure.govern.keys import ApiKey, Role, Scope, authenticate, sees_pii, touch_key
from tenure.store._locks import write_lock

__all__ = ["KeyCache", "Principal", "RateLimiter", "require"]

_TOUCH_EVERY = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a request: its key, role, and whether it sees PII in clear."""

    key_id: str
    role: Role
    name: str

    @property
    def sees_pii(self) -> bool:
        return sees_pii(self.role)

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


class KeyCache:
    """Keys recently authenticated, by a hash of what was presented."""

    def __init__(self, ttl: float) -> None:
        self._ttl = ttl
        self._known: dict[str, tuple[float, ApiKey]] = {}
        self._touched: dict[str, dt.datetime] = {}
        self._lock = threading.Lock()

    def fresh(self, presented: str, at: dt.datetime) -> ApiKey | None:
        """The key if it was checked within the TTL and needs no write: no I/O at all."""
        digest = hashlib.sha256(presented.encode()).hexdigest()
        with self._lock:
            cached = self._known.get(digest)
            if cached is None or time.monotonic() - cached[0] >= self._ttl:
                return None
            key = cached[1]
            last = self._touched.get(key.id)
        if not key.active(at) or last is None or at - last >= _TOUCH_EVERY:
            return None
        return key

    def lookup(self, request: Request, presented: str) -> ApiKey | None:
        """The key *presented* is, from the cache or the store (blocking: run it in a thread)."""
        state = request.app.state.tenure
        at = state.project.clock()
        digest = hashlib.sha256(presented.encode()).hexdigest()
        now = time.monotonic()
        with self._lock:
            cached = self._known.get(digest)
        if cached is not None and now - cached[0] < self._ttl and cached[1].active(at):
            key: ApiKey | None = cached[1]
        else:
            with state.project.store.connect() as connection:
                key = authenticate(connection, presented, at)
            with self._lock:
                if key is None:
                    self._known.pop(digest, None)
                else:
                    self._known[digest] = (now, key)
        if key is not None:
            self._touch(state, key, at)
        return key

    def _touch(self, state: object, key: ApiKey, at: dt.datetime) -> None:
        with self._lock:
            last = self._touched.get(key.id)
            if last is not None and at - last < _TOUCH_EVERY:
                return
            self._touched[key.id] = at
        store = state.project.store  # type: ignore[attr-defined]
        # like every writer, it queues for SQLite's one writer rather than sleeping in
        # the busy handler behind a group commit (tenure.store._locks)
        with write_lock(store), store.begin() as connection:
            touch_key(connection, key.id, at)

    def forget(self, key_id: str) -> None:
        with self._lock:
            for digest in [d for d, (_, k) in self._known.items() if k.id == key_id]:
                del self._known[digest]


class RateLimiter:
    """A token bucket per key: *rate* requests per second, bursts up to *burst*."""

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key_id: str) -> float:
        """0 when the request may go, else the seconds until it could."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key_id, (self._burst, now))
            tokens = min(self._burst, tokens + (now - last) * self._rate)
            if tokens >= 1:
                self._buckets[key_id] = (tokens - 1, now)
                return 0.0
            self._buckets[key_id] = (tokens, now)
            return (1 - tokens) / self._rate


_bearer = HTTPBearer(auto_error=False, description="An API key: `Bearer tnr_…`")
_basic = HTTPBasic(
    auto_error=False,
    description="An API key as the user name, empty password (how Segment SDKs send write keys)",
)


def document_key_schemes(document: dict[str, Any]) -> dict[str, Any]:
    """*document* (an OpenAPI document) with the key schemes on every route that needs a key.

    A route needs a key exactly when it answers 401 (``error_responses(401, …)``);
    one that already names its schemes (the webhooks, which also take a
    signature) is left as it is.
    """
    schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
    for name, scheme in (("HTTPBearer", _bearer), ("HTTPBasic", _basic)):
        schemes.setdefault(name, scheme.model.model_dump(by_alias=True, exclude_none=True))
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if "401" in operation.get("responses", {}) and "security" not in operation:
                operation["security"] = [{"HTTPBearer": []}, {"HTTPBasic": []}]
    return document


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, _password = decoded.partition(":")
        return user or None
    return None


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="tenure", Basic realm="tenure"'}


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that admits a request only with a key whose role has *scope*."""

    # The key is read from the header here; the two schemes are named in the OpenAPI
    # document by :func:`document_key_schemes` rather than as sub-dependencies,
    # which FastAPI would solve on every request (about a tenth of a small route's time).
    async def dependency(request: Request) -> Principal:
        presented = _presented(request)
        if presented is None:
            raise ApiError(401, "unauthorized", "an API key is required", headers=_CHALLENGE)
        state = request.app.state.tenure
        # a key seen moments ago is answered on the event loop; only a store lookup
        # (first use, expired cache entry, last-used stamp due) goes to a thread
        key = state.keys.fresh(presented, state.project.clock())
        if key is None:
            key = await run_in_threadpool(state.keys.lookup, request, presented)
        if key is None:
            raise ApiError(
                401, "unauthorized", "the API key is unknown, revoked or expired",
                headers=_CHALLENGE,
            )  # fmt: skip
        principal = Principal(key.id, key.role, key.name)
        request.state.principal = principal
        wait = state.limiter.take(key.id)
        if wait > 0:
            raise ApiError(
                429, "rate_limited", f"key {key.id} is over its rate limit",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )  # fmt: skip
        if scope not in key.scopes:
            raise ApiError(
                403, "forbidden", f"a key with role {key.role.value!r} may not use this route "
                f"(it needs scope {scope.value!r})",
            )  # fmt: skip
        return principal

    dependency.__name__ = f"require_{scope.name.lower()}"
    dependency.scope = scope  # type: ignore[attr-defined]  # what tests and docs read
    return dependency

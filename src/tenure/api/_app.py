"""The FastAPI application of ``tenure serve``.

It reads and writes the operational store only; the warehouse's DuckDB file
is never opened here (batch steps publish what the online path needs). The
background loader opens the lake's index for the duration of one load and
closes it again, so ``tenure ingest`` and the batch steps can run between loads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import gc
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tenure import __version__
from tenure._config_decide import parse_duration
from tenure._gc import use_throughput_thresholds
from tenure._tracing import configure_tracing, tracer
from tenure.api._auth import KeyCache, RateLimiter, document_key_schemes
from tenure.api._errors import JsonResponse, install_error_handlers
from tenure.api._metrics import Metrics
from tenure.api._telemetry import RequestMiddleware, make_logger
from tenure.collect._inbox import InboxWriter, load_inbox, prune_inbox
from tenure.govern.pii import pseudonym_secret
from tenure.project import Project

__all__ = ["AppState", "app_from_environment", "create_app", "load_once"]

_DESCRIPTION = """\
tenure's HTTP API.

* **Collection** (`/v1/*`) speaks Segment's HTTP tracking API: point a Segment or
  RudderStack SDK at this host with an `ingest` key as its write key.
* **Read and act**: profiles, the next-best action, in-app messages, decisions,
  the review queue, policies, models, consent and erasure.

Authenticate with an API key (`tenure keys create --role …`) as
`Authorization: Bearer <key>`, or as the user name of HTTP basic auth.
Every error is a JSON body naming the problem and, where one is to blame, the field.
"""


@dataclass
class AppState:
    project: Project
    writer: InboxWriter
    keys: KeyCache
    limiter: RateLimiter
    metrics: Metrics
    tracer: Any
    log: Any
    pseudonym_secret: bytes
    loader_error: str | None = None
    #: what routes started for the app and must stop with it (last first)
    on_close: list[Callable[[], None]] = field(default_factory=list)


@contextlib.contextmanager
def _loader_turn(project: Project) -> Iterator[bool]:
    """Whether this process may load now: one loader at a time per lake, across processes.

    Several server processes (``tenure serve --workers``) share one lake; the
    one holding the lock file loads, the others skip this round quietly.
    """
    path = project.lake.root / "_loader.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_once(project: Project, state: AppState | None = None) -> int:
    """Move the inbox to the lake once (opening the lake index just for it); events loaded.

    Returns 0 without loading when another process is loading this lake.
    """
    with _loader_turn(project) as mine:
        if not mine:
            return 0
        loader = Project(project.root, project.config, clock=project.clock)
        try:
            with tracer().start_as_current_span("collect.load") as span:
                report = load_inbox(loader)
                span.set_attribute("tenure.events", report.loaded if report else 0)
            window = parse_duration(project.config.serve.dedupe_window)
            with loader.store.begin() as connection:
                prune_inbox(connection, before=project.clock() - window)
        finally:
            loader.close()
    if report is None:
        return 0
    if state is not None:
        state.metrics.loaded.labels("loaded").inc(report.loaded)
        state.metrics.loaded.labels("duplicate").inc(report.duplicates)
        state.metrics.loaded.labels("quarantined").inc(report.quarantined)
    return report.loaded


async def _loader(state: AppState) -> None:
    interval = parse_duration(state.project.config.serve.loader_interval).total_seconds()
    # one thread: the lake index's DuckDB connection belongs to a single thread of work
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tenure-loader") as pool:
        loop = asyncio.get_running_loop()
        while True:
            try:
                loaded = await loop.run_in_executor(pool, load_once, state.project, state)
                state.loader_error = None
                if loaded:
                    state.log.info("inbox loaded", events=loaded)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # e.g. the index is locked by `tenure ingest`: next time
                state.loader_error = f"{type(error).__name__}: {error}"
                state.log.warning("inbox load failed", error=state.loader_error)
            await asyncio.sleep(interval)


def create_app(
    project: Project, *, loader: bool | None = None, server_process: bool = False
) -> FastAPI:
    """The API for *project*. *loader* overrides ``serve.loader`` (tests turn it off).

    *server_process*: the app owns its process (``tenure serve``). Once started,
    the objects start-up made (modules, the app, compiled schemas: a few hundred
    thousand) are frozen out of the cyclic garbage collector. Otherwise every
    full collection walks them all — about 160 ms on this machine, every few
    seconds under load, during which every request waits.
    """
    settings = project.config.serve
    configure_tracing(settings)
    run_loader = settings.loader if loader is None else loader

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = AppState(
            project=project,
            writer=InboxWriter(project.store, project.clock),
            keys=KeyCache(settings.key_cache_seconds),
            limiter=RateLimiter(settings.rate_limit, settings.rate_burst),
            metrics=Metrics(project.store, project.clock),
            tracer=tracer(),
            log=make_logger(settings.access_log),
            pseudonym_secret=pseudonym_secret(project),
        )
        app.state.tenure = state
        if server_process:
            use_throughput_thresholds()
            gc.collect()
            gc.freeze()
        task = asyncio.create_task(_loader(state)) if run_loader else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for close in reversed(state.on_close):
                close()
            state.writer.close()

    app = FastAPI(
        title="tenure",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
        default_response_class=JsonResponse,
    )
    install_error_handlers(app)
    document = app.openapi

    def openapi() -> dict[str, Any]:
        return document_key_schemes(document())

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(RequestMiddleware)
    # routers, imported late to keep this module light
    from tenure.api import _act, _collect, _keys, _ops, _profiles, _reports, _webhooks

    # The router tries routes in order: the two hot paths (collection, the next-best
    # action) come first. No path of one router can match another's, so order is only speed.
    for module in (_collect, _act, _ops, _webhooks, _profiles, _keys, _reports):
        app.include_router(module.router)
    return app


def app_from_environment() -> FastAPI:
    """The app for the project in ``TENURE_PROJECT``; each ``tenure serve --workers`` process's."""
    return create_app(Project(Path(os.environ.get("TENURE_PROJECT", "."))), server_process=True)

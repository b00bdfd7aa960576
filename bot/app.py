"""The HTTP app: WeCom callback, health, readiness and metrics (DESIGN §4.3)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlmodel import Session

from bot.health import liveness, readiness
from bot.logs import RequestIdMiddleware
from bot.runtime import Runtime
from bot.warmup import freeze_heap, keep_warm


def create_app(runtime: Runtime, *, scheduler: bool = True, warmup: bool = False) -> FastAPI:
    """The app; ``warmup`` is for a serving process (see bot.warmup), off in tests."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sched = None
        if scheduler:
            from bot.scheduler import start_scheduler

            sched = start_scheduler(runtime)
        app.state.scheduler = sched
        warm = asyncio.create_task(keep_warm(runtime)) if warmup else None
        if warmup:
            freeze_heap()
        try:
            yield
        finally:
            if warm is not None:
                warm.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await warm
            if sched is not None:
                sched.shutdown(wait=False)
            await runtime.aclose()
            from bot.serve import mark_worker_dead

            mark_worker_dead()

    app = FastAPI(title="Mofan Bot", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime

    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return liveness()

    @app.get("/readyz")
    def readyz() -> Response:
        state = readiness(runtime, getattr(app.state, "scheduler", None))
        return JSONResponse(state.as_json(), status_code=200 if state.ready else 503)

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from bot.metrics import OUTBOX_DEPTH, OUTBOX_OLDEST_AGE
        from bot.outbox import outbox_depth
        from bot.serve import metrics_registry

        with Session(runtime.engine) as session:
            depth, age = outbox_depth(session, now=runtime.clock.now())
        OUTBOX_DEPTH.set(depth)
        OUTBOX_OLDEST_AGE.set(age or 0)
        return Response(generate_latest(metrics_registry()), media_type=CONTENT_TYPE_LATEST)

    with contextlib.suppress(ImportError):
        from bot.callback import mount_callback

        mount_callback(app, runtime)
    return app


def plain(text_: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(text_, status_code=status)

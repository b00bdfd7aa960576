"""The HTTP app: WeCom callback, health, readiness and metrics (DESIGN §4.3)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import text
from sqlmodel import Session

from bot.runtime import Runtime


def create_app(runtime: Runtime, *, scheduler: bool = True) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        sched = None
        if scheduler:
            from bot.scheduler import start_scheduler

            sched = start_scheduler(runtime)
        app.state.scheduler = sched
        try:
            yield
        finally:
            if sched is not None:
                sched.shutdown(wait=False)
            await runtime.aclose()

    app = FastAPI(title="Mofan Bot", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.runtime = runtime

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        return _readiness(runtime, app.state.scheduler if hasattr(app.state, "scheduler") else None)

    @app.get("/metrics")
    def metrics() -> Response:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        from bot.metrics import OUTBOX_DEPTH, OUTBOX_OLDEST_AGE, REGISTRY
        from bot.outbox import outbox_depth

        with Session(runtime.engine) as session:
            depth, age = outbox_depth(session, now=runtime.clock.now())
        OUTBOX_DEPTH.set(depth)
        OUTBOX_OLDEST_AGE.set(age or 0)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    with contextlib.suppress(ImportError):
        from bot.callback import mount_callback

        mount_callback(app, runtime)
    return app


READY_MAX_OUTBOX_AGE = 600.0


def _readiness(runtime: Runtime, sched: Any) -> Response:
    from bot.db import current_revision, head_revision
    from bot.outbox import outbox_depth

    checks: dict[str, Any] = {}
    ok = True
    try:
        with Session(runtime.engine) as session:
            session.execute(text("SELECT 1"))
            depth, age = outbox_depth(session, now=runtime.clock.now())
        checks["database"] = "ok"
        checks["outbox_pending"] = depth
        checks["outbox_oldest_age_seconds"] = age
        if age is not None and age > READY_MAX_OUTBOX_AGE:
            ok = False
    except Exception as exc:  # report, never raise: this is what ops look at
        checks["database"] = f"error: {type(exc).__name__}"
        return JSONResponse({"ready": False, **checks}, status_code=503)
    current, head = current_revision(runtime.engine), head_revision()
    checks["migrations"] = "head" if current == head else f"behind ({current} < {head})"
    ok = ok and current == head
    checks["scheduler"] = "running" if sched is not None and sched.running else "off"
    return JSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)


def plain(text_: str, status: int = 200) -> PlainTextResponse:
    return PlainTextResponse(text_, status_code=status)

"""``mofan serve``: one process, or N uvicorn worker processes for PostgreSQL deployments.

One process (the default) serves the callback and runs the scheduler; it suits SQLite and
most bureaus. ``--workers N`` (N > 1) starts N separate processes through uvicorn's
process manager, which restarts a worker that dies. It needs PostgreSQL: SQLite takes one
writer at a time, and N writers would only queue for its lock inside WeCom's 5 s budget.

With workers:

- each worker builds its own runtime from the same config (``$MOFAN_CONFIG``, set here to
  the file the command was given), in :func:`worker_app`;
- every worker runs the scheduler, and the leader election in the database (:mod:`bot.leader`:
  a PostgreSQL advisory lock) lets exactly one of them, on one machine, plan and send; when
  that worker dies, another takes over at its next tick;
- prometheus-client runs in multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` is set (and
  emptied) before the workers start, and ``/metrics`` adds up every worker's files.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

    from bot.clock import ScaledClock
    from bot.config import Settings
    from bot.runtime import Runtime

log = logging.getLogger("mofan.serve")

ENV_CONFIG = "MOFAN_CONFIG"
ENV_SCHEDULER = "MOFAN_SERVE_SCHEDULER"
ENV_MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
GRACEFUL_SECONDS = 10


class ServeError(Exception):
    """A serve configuration that cannot work; the message says what to change."""


def check_workers(settings: Settings, workers: int) -> None:
    if workers < 1:
        raise ServeError("--workers must be at least 1")
    if workers > 1 and not settings.database.url.startswith("postgresql"):
        raise ServeError(
            f"--workers {workers} needs PostgreSQL: SQLite takes one writer at a time, so "
            "several worker processes would wait on its lock. Run one process (leave out "
            "--workers; it serves a bureau of a few thousand members), or set [database] url "
            "= postgresql+psycopg://user@host/db, run `mofan db upgrade`, and try again."
        )


def run(
    runtime: Runtime,
    *,
    config: str | None,
    host: str,
    port: int,
    workers: int = 1,
    scheduler: bool = True,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn stops accepting, finishes requests, shuts down).

    Call it inside :func:`metrics_directory`, entered before anything imports
    ``bot.metrics``: prometheus-client picks its mode when it is first imported.
    """
    import uvicorn

    check_workers(runtime.settings, workers)
    use_dev_clock(runtime)
    if workers == 1:
        from bot.app import create_app

        app = create_app(runtime, scheduler=scheduler, warmup=True)
        uvicorn.run(
            app, host=host, port=port, log_config=None, timeout_graceful_shutdown=GRACEFUL_SECONDS
        )
        return
    # Each worker opens its own connections; the parent keeps none.
    runtime.engine.dispose()
    if config:
        os.environ[ENV_CONFIG] = str(Path(config).resolve())
    os.environ[ENV_SCHEDULER] = "1" if scheduler else "0"
    uvicorn.run(
        "bot.serve:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=GRACEFUL_SECONDS,
    )


@contextlib.contextmanager
def metrics_directory(workers: int) -> Iterator[Path | None]:
    """prometheus-client's multiprocess directory, emptied at each start, when needed.

    With workers, or when the operator sets ``PROMETHEUS_MULTIPROC_DIR`` (e.g. to systemd's
    ``RuntimeDirectory``), that directory is used and emptied, as prometheus-client requires;
    with workers and no such setting, a temporary one is made, and removed at the end.
    """
    given = os.environ.get(ENV_MULTIPROC)
    if given:
        path = Path(given)
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):
            stale.unlink()
        yield path
        return
    if workers <= 1:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="mofan-metrics-"))
    os.environ[ENV_MULTIPROC] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ENV_MULTIPROC, None)
        shutil.rmtree(path, ignore_errors=True)


def worker_app() -> FastAPI:
    """uvicorn's factory in each worker process: settings, logging, runtime, app."""
    from bot.app import create_app
    from bot.config import load_settings
    from bot.logs import setup_logging
    from bot.runtime import Runtime

    setup_logging()
    settings = load_settings(os.environ.get(ENV_CONFIG) or None)
    scheduler = os.environ.get(ENV_SCHEDULER, "1") == "1"
    runtime = Runtime(settings=settings)
    use_dev_clock(runtime)
    return create_app(runtime, scheduler=scheduler, warmup=True)


def use_dev_clock(runtime: Runtime) -> ScaledClock | None:
    """Tests and benchmarks only: put ``runtime`` on the development clock that
    ``$MOFAN_DEV_CLOCK`` asks for (``bot.clock.ScaledClock``, simulated time N times faster
    than the wall clock); without it, nothing changes.

    Durations that guard against dead or slow processes stay real: the outbox claim lease
    is scaled by N here, the scheduler's lease and ticks in ``bot.scheduler``. Retry
    backoff, the send window and every reminder rule live in simulated time.
    """
    from bot.clock import DEV_CLOCK_ENV, dev_clock_from_env

    try:
        clock = dev_clock_from_env()
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    if clock is None:
        return None
    # Anything built on the old clock is rebuilt on the new one when next asked for.
    for built in ("router", "channels", "dispatcher"):
        runtime.__dict__.pop(built, None)
    outbox = runtime.settings.outbox
    scaled = outbox.model_copy(update={"lease_seconds": int(outbox.lease_seconds * clock.factor)})
    runtime.settings = runtime.settings.model_copy(update={"outbox": scaled})
    runtime.clock = clock
    log.warning(
        "%s is set: running on a development clock (%s), not the real time; for tests and "
        "benchmarks only",
        DEV_CLOCK_ENV,
        clock.describe(),
    )
    return clock


def mark_worker_dead() -> None:
    """Tell prometheus-client this worker's live gauges are gone (multiprocess mode)."""
    if os.environ.get(ENV_MULTIPROC):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


def metrics_registry() -> CollectorRegistry:
    """What ``/metrics`` exposes: this process's registry, or every worker's files added up."""
    from bot.metrics import REGISTRY

    if not os.environ.get(ENV_MULTIPROC):
        return REGISTRY
    from prometheus_client import CollectorRegistry, multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry

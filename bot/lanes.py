"""An executor that runs handlers on one thread, and adds threads only while that one is stuck.

Handlers are CPU and database bound: under load several threads only fight over the GIL. In
one profiled run of bench/callback_throughput.py (2-core machine, others working on it), four
pool threads cost 3.4 ms of CPU per message and one thread 2.1 ms; later runs on that machine
were too noisy to repeat the comparison cleanly. But one slow handler (an export, a lock held by another process) must not hold up
everyone behind it: when every running thread has been on its current job for longer than
``stuck_after``, :meth:`Lanes.relieve` starts one more, up to ``max_threads``. Extra threads
leave as soon as the others are no longer stuck (or after ``idle_seconds`` without work), so
the steady state is one thread.

Waiters call :meth:`Lanes.relieve` while they wait (the callback does, every ``stuck_after``),
so work queued behind a stuck job is picked up even when no new work arrives.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_STOP = object()


class _Worker:
    __slots__ = ("started", "thread")

    def __init__(self) -> None:
        self.started: float | None = None
        """When the current job began (monotonic), None while waiting for one."""
        self.thread: threading.Thread | None = None


class Lanes:
    def __init__(
        self,
        *,
        max_threads: int = 4,
        stuck_after: float = 0.1,
        idle_seconds: float = 5.0,
        name: str = "lanes",
    ) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self.max_threads = max_threads
        self.stuck_after = stuck_after
        self.idle_seconds = idle_seconds
        self.name = name
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._waiting = 0
        """Jobs submitted and not yet taken by a thread."""
        self._closed = False

    # --- public ---------------------------------------------------------------------------

    def submit(self, fn: Callable[..., Any], /, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("lanes closed")
            self._waiting += 1
            self._jobs.put((future, fn, args))
            if not self._workers:
                self._start_worker()
            else:
                self._grow_if_stuck()
        return future

    def relieve(self) -> bool:
        """Start another thread if work is waiting and every thread is stuck. True if it did."""
        with self._lock:
            return self._grow_if_stuck()

    @property
    def threads(self) -> int:
        with self._lock:
            return len(self._workers)

    def shutdown(self, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._workers)
            for _ in workers:
                self._jobs.put(_STOP)
        if wait:
            for w in workers:
                if w.thread is not None and w.thread is not threading.current_thread():
                    w.thread.join()

    # --- inside ---------------------------------------------------------------------------

    def _grow_if_stuck(self) -> bool:
        # Called with the lock held.
        if self._closed or self._waiting == 0 or len(self._workers) >= self.max_threads:
            return False
        now = time.monotonic()
        for w in self._workers:
            if w.started is None or now - w.started < self.stuck_after:
                return False  # a thread is free, or about to be
        self._start_worker()
        return True

    def _start_worker(self) -> None:
        w = _Worker()
        first = not self._workers
        self._workers.append(w)
        w.thread = threading.Thread(
            target=self._loop,
            args=(w, first),
            name=f"{self.name}_{len(self._workers) - 1}",
            daemon=True,
        )
        w.thread.start()

    def _loop(self, w: _Worker, first: bool) -> None:
        while True:
            try:
                # The first thread stays; extra ones leave after a quiet spell.
                item = self._jobs.get(timeout=None if first else self.idle_seconds)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._workers.remove(w)
                        return
                continue
            if item is _STOP:
                return
            future, fn, args = item
            with self._lock:
                self._waiting -= 1
                w.started = time.monotonic()
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # it belongs to the caller, like an Executor's
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            with self._lock:
                w.started = None
                if not first and not self._others_stuck(w):
                    # The jam has cleared: back to one thread, or the extra threads would stay
                    # for good under steady load and fight over the GIL again.
                    self._workers.remove(w)
                    return

    def _others_stuck(self, me: _Worker) -> bool:
        # Called with the lock held.
        now = time.monotonic()
        return all(
            w.started is not None and now - w.started >= self.stuck_after
            for w in self._workers
            if w is not me
        )

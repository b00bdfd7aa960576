"""The handler executor: one thread while work is quick, help while a job is stuck."""

from __future__ import annotations

import threading
import time

import pytest

from bot.lanes import Lanes


@pytest.fixture
def lanes():
    pool = Lanes(max_threads=3, stuck_after=0.05, idle_seconds=0.3, name="t")
    yield pool
    pool.shutdown()


def test_quick_jobs_run_on_one_thread(lanes):
    names = [lanes.submit(lambda: threading.current_thread().name).result(5) for _ in range(50)]
    assert set(names) == {"t_0"}
    assert lanes.threads == 1


def test_results_and_exceptions_come_back(lanes):
    assert lanes.submit(lambda a, b: a + b, 2, 3).result(5) == 5

    def boom() -> None:
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        lanes.submit(boom).result(5)
    assert lanes.submit(lambda: "still serving").result(5) == "still serving"


def test_work_queued_behind_a_stuck_job_is_picked_up(lanes):
    release = threading.Event()
    slow = lanes.submit(release.wait, 10)
    time.sleep(0.02)
    quick = lanes.submit(lambda: "quick")  # queued behind the slow one, not yet stuck
    assert lanes.threads == 1
    deadline = time.monotonic() + 5
    while not quick.done() and time.monotonic() < deadline:
        lanes.relieve()  # what a waiting request does
        time.sleep(0.01)
    assert quick.result(0) == "quick", "the quick job must not wait for the slow one"
    assert not slow.done()
    assert lanes.threads == 2
    release.set()
    assert slow.result(5) is True


def test_no_more_threads_than_the_cap(lanes):
    release = threading.Event()
    jobs = [lanes.submit(release.wait, 10) for _ in range(6)]
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        lanes.relieve()
        time.sleep(0.01)
    assert lanes.threads == 3
    assert sum(j.running() for j in jobs) == 3
    release.set()
    assert all(j.result(5) for j in jobs)


def test_extra_threads_leave_when_quiet(lanes):
    release = threading.Event()
    lanes.submit(release.wait, 10)
    time.sleep(0.08)
    lanes.submit(lambda: None)
    assert lanes.relieve() or lanes.threads == 2
    release.set()
    deadline = time.monotonic() + 5
    while lanes.threads > 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lanes.threads == 1


def test_relieve_does_nothing_when_no_work_waits(lanes):
    release = threading.Event()
    lanes.submit(release.wait, 10)
    time.sleep(0.1)
    assert lanes.relieve() is False  # stuck, but nobody is waiting behind it
    assert lanes.threads == 1
    release.set()


def test_submit_after_shutdown_is_refused():
    pool = Lanes(max_threads=2)
    pool.submit(lambda: None).result(5)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: None)


def test_extra_threads_leave_as_soon_as_the_jam_clears(lanes):
    """Under steady load an extra thread must not stay: several threads only fight over the GIL."""
    release = threading.Event()
    lanes.submit(release.wait, 10)
    time.sleep(0.08)
    quick = [lanes.submit(lambda: None) for _ in range(3)]
    assert all(q.result(5) is None for q in quick)  # served by a helper thread
    release.set()
    time.sleep(0.05)
    for _ in range(100):  # steady quick work, never idle for idle_seconds
        lanes.submit(lambda: None).result(5)
    assert lanes.threads == 1

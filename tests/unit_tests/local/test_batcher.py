"""MicroBatcher with a recording run function (no model, no torch).

Why: the batcher decides which requests share a forward pass. A request that joins the wrong
batch gets another request's settings; one whose batch fails must see the error, not hang; a
cancelled caller must not break the batch for the others.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from hia_chain.local.batcher import MicroBatcher


class Recorder:
    """Runs a batch by upper-casing its items, recording ``(key, items)`` per call."""

    def __init__(self, delay: float = 0.0, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, key: str, items: list[str]) -> list[str]:
        self.calls.append((key, list(items)))
        time.sleep(self.delay)
        if self.fail_on in items:
            raise RuntimeError(f"cannot run {self.fail_on}")
        return [f"{key}:{i.upper()}" for i in items]


@pytest.mark.timeout(10)
def test_threads_that_arrive_together_share_one_batch() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(batcher.submit, "k", x, window=0.1) for x in "abcd"]
        results = [f.result() for f in futures]
    assert results == ["k:A", "k:B", "k:C", "k:D"]
    assert len(run.calls) == 1 and sorted(run.calls[0][1]) == list("abcd")


@pytest.mark.timeout(10)
async def test_coroutines_share_a_batch_and_keys_split_it() -> None:
    run = Recorder()
    batcher = MicroBatcher(run)
    results = await asyncio.gather(
        *(batcher.asubmit(k, x, window=0.05) for k, x in [("a", "x"), ("b", "y"), ("a", "z")])
    )
    assert results == ["a:X", "b:Y", "a:Z"]
    assert sorted(run.calls) == [("a", ["x", "z"]), ("b", ["y"])]


@pytest.mark.timeout(10)
async def test_an_error_reaches_every_request_of_its_batch_and_no_other() -> None:
    batcher = MicroBatcher(Recorder(fail_on="bad"))
    results = await asyncio.gather(
        *(batcher.asubmit(k, x, window=0.05) for k, x in [("a", "bad"), ("a", "x"), ("b", "y")]),
        return_exceptions=True,
    )
    assert [str(r) for r in results] == ["cannot run bad", "cannot run bad", "b:Y"]


@pytest.mark.timeout(10)
def test_requests_arriving_while_a_batch_runs_join_the_next_one() -> None:
    run = Recorder(delay=0.3)
    batcher = MicroBatcher(run)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(batcher.submit, "k", "a", window=0.0)
        time.sleep(0.1)  # "a" is running now
        later = [pool.submit(batcher.submit, "k", x, window=0.0) for x in "bc"]
        time.sleep(0.05)
        late = pool.submit(batcher.submit, "k", "d", window=0.0)
        assert [f.result() for f in (first, *later, late)] == ["k:A", "k:B", "k:C", "k:D"]
    assert [sorted(items) for _, items in run.calls] == [["a"], ["b", "c", "d"]]


@pytest.mark.timeout(10)
async def test_cancelled_callers_leave_the_batch_to_the_others() -> None:
    run = Recorder(delay=0.1)
    batcher = MicroBatcher(run)
    leader, cancelled, waiting = (
        asyncio.create_task(batcher.asubmit("k", x, window=0.05)) for x in "abc"
    )
    await asyncio.sleep(0)  # all three are queued; "a" leads
    leader.cancel()
    cancelled.cancel()
    assert await waiting == "k:C"  # the cancelled leader's batch still ran
    assert run.calls == [("k", ["c"])]  # without the requests nobody waits for
    for task in (leader, cancelled):
        with pytest.raises(asyncio.CancelledError):
            await task


def test_run_alone_bypasses_the_queue_but_waits_for_a_running_batch() -> None:
    run = Recorder(delay=0.2)
    batcher = MicroBatcher(run)
    thread = threading.Thread(target=batcher.submit, args=("k", "a"), kwargs={"window": 0.0})
    thread.start()
    time.sleep(0.05)
    started = time.perf_counter()
    assert batcher.run_alone("k", "b") == "k:B"
    assert time.perf_counter() - started > 0.1  # one batch at a time
    thread.join()
    assert run.calls == [("k", ["a"]), ("k", ["b"])]


class Overlap:
    """Counts how many of the watched sections run at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = self.most = 0
        self.log: list[str] = []

    def section(self, name: str, seconds: float) -> None:
        with self.lock:
            self.active += 1
            self.most = max(self.most, self.active)
            self.log.append(name)
        time.sleep(seconds)
        with self.lock:
            self.active -= 1


@pytest.mark.timeout(10)
def test_exclusive_blocks_never_run_beside_a_batch_and_cannot_starve_one() -> None:
    watch = Overlap()

    def run(key: str, items: list[str]) -> list[str]:
        watch.section("batch", 0.02)
        return items

    batcher = MicroBatcher(run)
    stop = threading.Event()

    def stream() -> None:  # a stream: the engine once per token, released between tokens
        while not stop.is_set():
            with batcher.exclusive():
                watch.section("token", 0.005)

    thread = threading.Thread(target=stream)
    thread.start()
    try:
        time.sleep(0.05)
        with ThreadPoolExecutor(2) as pool:
            for _ in range(3):  # each batch gets in although the stream retakes the lock at once
                assert pool.submit(batcher.submit, "k", "x", window=0.0).result(timeout=2) == "x"
    finally:
        stop.set()
        thread.join()
    assert watch.most == 1
    assert watch.log.count("batch") == 3 and watch.log.count("token") > 3


@pytest.mark.timeout(10)
def test_a_waiter_interrupted_before_its_turn_gives_the_turn_up() -> None:
    batcher = MicroBatcher(Recorder())
    lock = batcher._engine
    real_wait = lock._cond.wait
    interrupted = threading.Event()

    def wait_once_then_interrupt(timeout: float | None = None) -> bool:
        if threading.current_thread().name == "victim" and not interrupted.is_set():
            interrupted.set()
            raise KeyboardInterrupt
        return real_wait(timeout)

    lock._cond.wait = wait_once_then_interrupt  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def victim() -> None:
        try:
            with batcher.exclusive():
                pass
        except BaseException as exc:  # noqa: BLE001 - the test checks what it was
            errors.append(exc)

    with batcher.exclusive():
        thread = threading.Thread(target=victim, name="victim")
        thread.start()
        thread.join()
    assert [type(e) for e in errors] == [KeyboardInterrupt]
    assert batcher.submit("k", "a", window=0.0) == "k:A"  # the abandoned turn was skipped

"""MicroBatcher: requests that arrive together run as one batch.

A round of HIA calls, a draft batch or a LangChain ``batch``/``abatch`` sends several requests
to one local model within milliseconds. Run one by one they cost one forward pass per request
per token; batched they cost one. The first request of a batch (the *leader*) waits
``window`` seconds for others, then waits until no batch is running, takes every request
queued by then and runs them, grouped by key (requests with different settings cannot share a
forward pass). The others (*followers*) wait for their own result. Because the leader takes
the queue only once the engine is free, requests that arrive while a batch runs join the next
one instead of running beside it.

Sync callers block in :meth:`MicroBatcher.submit`; async callers await
:meth:`MicroBatcher.asubmit`, whose batch runs on a thread of its own so the event loop stays
free. Work that must not run beside a batch but cannot join one (a stream decoding token by
token) holds :meth:`MicroBatcher.exclusive` instead. The engine lock is taken in arrival order,
so a stream that takes it once per token cannot starve a waiting batch, nor a batch a stream.
Knows nothing of models: it is handed the function that runs one batch.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["MicroBatcher"]

K = TypeVar("K", bound=Hashable)
T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Request(Generic[K, T, R]):
    key: K
    item: T
    future: concurrent.futures.Future[R] = field(default_factory=concurrent.futures.Future)


class _FairLock:
    """A lock taken in arrival order. ``threading.Lock`` promises no order: the thread that
    just released it may take it again before a waiter wakes, so a stream taking it once per
    token could keep a batch waiting for many tokens.

    A waiter interrupted before its turn (``KeyboardInterrupt``) gives its turn up.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0  # the ticket the next arrival takes
        self._serving = 0  # the ticket that holds the lock, or may take it now
        self._abandoned: set[int] = set()

    def __enter__(self) -> None:
        with self._cond:
            ticket, self._next = self._next, self._next + 1
            try:
                while ticket != self._serving:
                    self._cond.wait()
            except BaseException:
                self._abandoned.add(ticket)
                self._skip_abandoned()
                raise

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._serving += 1
            self._skip_abandoned()

    def _skip_abandoned(self) -> None:
        """Pass the turn over tickets whose holders left, and wake the waiters (lock held)."""
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._cond.notify_all()


class MicroBatcher(Generic[K, T, R]):
    """Collects concurrent requests and runs them as batches, one batch at a time.

    Args:
        run: runs one batch: ``run(key, items)`` returns one result per item, in order. An
            exception it raises reaches every request of that batch and no other.
    """

    def __init__(self, run: Callable[[K, list[T]], list[R]]) -> None:
        self._run = run
        self._engine = _FairLock()  # one batch (or exclusive block) at a time
        self._queue_lock = threading.Lock()
        self._queue: list[_Request[K, T, R]] = []
        self._leading = False  # a leader is waiting to take the queue

    def submit(self, key: K, item: T, *, window: float) -> R:
        """Run ``item`` in a batch with the requests that arrive within ``window`` seconds
        (blocking). Call it from threads; on an event loop's thread use :meth:`run_alone`.

        Raises:
            Exception: whatever ``run`` raised for this request's batch.
        """
        request, lead = self._enqueue(key, item)
        if lead:
            self._lead(window)
        return request.future.result()

    async def asubmit(self, key: K, item: T, *, window: float) -> R:
        """Like :meth:`submit`, awaiting the result without blocking the event loop.

        The leader's batch runs on a thread of its own, so cancelling the leader (LangChain
        cancels tasks natively, which no cancel scope can shield) never strands its followers.

        Raises:
            Exception: whatever ``run`` raised for this request's batch.
        """
        request, lead = self._enqueue(key, item)
        if lead:
            threading.Thread(
                target=self._lead, args=(window,), name="hia-batch", daemon=True
            ).start()
        return await asyncio.wrap_future(request.future)

    def run_alone(self, key: K, item: T) -> R:
        """Run one request now, in its own batch (still one batch at a time).

        For a sync call made on an event loop's thread: waiting there for a batch led by a
        coroutine of that same loop would deadlock.
        """
        with self._engine:
            return self._run(key, [item])[0]

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the engine: no batch runs until the block ends, and the block waits for a
        running batch. Waiters (batches, :meth:`run_alone`, other blocks) go in arrival order.

        For work on the same weights that cannot join a batch, e.g. a stream. Keep blocks short
        (one decoding step, not a whole stream): every batch waits while one is held, and code
        inside that calls :meth:`submit` on this batcher deadlocks.
        """
        with self._engine:
            yield

    def _enqueue(self, key: K, item: T) -> tuple[_Request[K, T, R], bool]:
        """Queue one request; True when it is the leader of the next batch."""
        request: _Request[K, T, R] = _Request(key, item)
        with self._queue_lock:
            self._queue.append(request)
            lead, self._leading = not self._leading, True
        return request, lead

    def _lead(self, window: float) -> None:
        """The leader's job: wait ``window`` seconds for others, then run the queue."""
        time.sleep(window)
        self._drain()

    def _drain(self) -> None:
        """Take the queue once no batch is running and run it, one ``run`` call per key."""
        with self._engine:
            with self._queue_lock:
                batch, self._queue, self._leading = self._queue, [], False
            # a follower whose awaiting task was cancelled has a cancelled future: skip it
            groups: dict[K, list[_Request[K, T, R]]] = {}
            for request in batch:
                if request.future.set_running_or_notify_cancel():
                    groups.setdefault(request.key, []).append(request)
            for key, requests in groups.items():
                try:
                    results = self._run(key, [r.item for r in requests])
                    if len(results) != len(requests):
                        msg = f"a batch of {len(requests)} returned {len(results)} results"
                        raise RuntimeError(msg)
                except BaseException as exc:
                    for r in requests:
                        r.future.set_exception(exc)
                    if not isinstance(exc, Exception):  # interrupted: fail the rest, stop
                        for r in batch:
                            if not r.future.done():
                                r.future.set_exception(exc)
                        raise
                else:
                    for r, result in zip(requests, results, strict=True):
                        r.future.set_result(result)

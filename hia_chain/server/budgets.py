"""One budget pool per API key and period: in this process, or in Redis for every worker.

The pool is the ``parent`` of each request's own budget (``Budget(calls=hia.budget)``), so
one reservation must fit both: a request never spends more than it asked for, a key never
more than its caps, and concurrent requests cannot overspend either (reservations are
atomic, in-flight calls count). Periods are aligned to the Unix epoch, in-process and in
Redis alike, so ``Retry-After`` is the same on every worker.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

from hia_chain.budget import BaseBudget, Budget
from hia_chain.server.keys import KeyRing, KeySpec

__all__ = ["KeyBudgets"]


class KeyBudgets:
    """The budget pool of each key (``None`` for a key without caps).

    Args:
        keys: The keys and their caps.
        redis_url: Keep the pools in this Redis (shared by every worker and host).
        namespace: Prefix of the Redis pool names (one server's keys apart from another's).
    """

    def __init__(
        self, keys: KeyRing, redis_url: str | None = None, namespace: str = "hia-server"
    ) -> None:
        self.keys = keys
        self.redis_url = redis_url
        self.namespace = namespace
        self._lock = threading.Lock()
        self._local: dict[tuple[str, int], Budget] = {}
        self._redis: dict[str, BaseBudget] = {}

    def pool(self, spec: KeySpec) -> BaseBudget | None:
        """The pool ``spec`` spends from now (a new one each period), or ``None`` if uncapped."""
        if spec.calls is None and spec.tokens is None and spec.cost is None:
            return None
        price = self.keys.price_of(spec)
        prices: dict[str, Any] = {"response": price} if price is not None else {}
        if self.redis_url is not None:
            with self._lock:
                if spec.name not in self._redis:
                    from hia_chain.redis_budget import RedisBudget

                    self._redis[spec.name] = RedisBudget(
                        self.redis_url,
                        name=f"{self.namespace}:{spec.name}",
                        calls=spec.calls,
                        tokens=spec.tokens,
                        cost=spec.cost,
                        prices=prices,
                        period=spec.period,
                    )
                return self._redis[spec.name]
        window = 0 if spec.period is None else math.floor(time.time() / spec.period)
        with self._lock:
            budget = self._local.get((spec.name, window))
            if budget is None:
                for old in [k for k in self._local if k[0] == spec.name]:
                    del self._local[old]  # in-flight calls settle on the object they hold
                budget = Budget(spec.calls, spec.tokens, spec.cost, prices=prices)
                self._local[(spec.name, window)] = budget
            return budget

    @staticmethod
    def retry_after(spec: KeySpec) -> float | None:
        """Seconds until ``spec``'s caps start afresh (``None``: they never do)."""
        if spec.period is None:
            return None
        now = time.time()
        return spec.period - (now % spec.period)

    async def calls_left(self, spec: KeySpec) -> int | None:
        """Response calls ``spec`` may still start this period (``None``: no calls cap)."""
        pool = self.pool(spec)
        return None if pool is None else await pool.aremaining_calls("response")

    async def aclose(self) -> None:
        for pool in self._redis.values():
            close = getattr(pool, "aclose", None)
            if close is not None:
                await close()

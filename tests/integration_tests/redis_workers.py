"""Worker processes for the cross-process RedisBudget tests (run as ``python -m``).

Each worker is a separate Python process, like a real worker behind a load balancer: it builds
its own ``RedisBudget`` on the shared pool, and sends requests (each with its own per-request
``Budget`` whose parent is the pool) through hia_chain's one call path to a fake chat model
that counts every call it receives in Redis (the "provider's" count, independent of the
budget's own ledger).

Modes:

* ``burst``: wait until every worker is ready, then run ``--requests`` concurrent requests,
  each trying one call more than its own budget allows; print a JSON summary.
* ``hang``: hold ``--requests`` calls in flight on a model that never answers, print
  ``IN_FLIGHT`` once they all reached the model, and wait to be killed.
* ``drain``: run ``--requests`` concurrent request loops until the pool is dry (nothing left
  and nothing in flight anywhere), then print a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import redis
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from hia_chain.budget import Budget
from hia_chain.calls import call_model
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError
from hia_chain.redis_budget import RedisBudget


class RedisCountingModel(BaseChatModel):
    """A fake provider: counts each call it receives in Redis (INCR), sleeps, answers."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    url: str
    counter: str
    latency: float = 0.0
    _client: Any = None

    @property
    def _llm_type(self) -> str:
        return "redis-counting-fake"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        raise NotImplementedError

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self._client is None:
            import redis.asyncio as aioredis

            pool = aioredis.BlockingConnectionPool.from_url(self.url, max_connections=32)
            self._client = aioredis.Redis(connection_pool=pool)
        await self._client.incr(self.counter)  # the provider received the call
        await asyncio.sleep(self.latency)
        usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage("ok", usage_metadata=usage))]
        )


async def one_request(pool: RedisBudget, model: RedisCountingModel, per_request: int) -> int:
    """One request: its own budget of ``per_request`` calls; tries one more than that."""
    ctx = RunContext(budget=Budget(calls=per_request, parent=pool))
    made = 0
    for _ in range(per_request + 1):
        try:
            await call_model(ctx, "response", model, "hi", bound=None)
        except BudgetExceededError:
            break
        made += 1
    assert ctx.budget.usage().calls == made
    return made


async def burst(args: argparse.Namespace, pool: RedisBudget, model: RedisCountingModel) -> None:
    """One phase per cap in ``--caps`` (pool ``<pool>-<cap>``, counter ``<counter>-<cap>``)."""
    sync = redis.Redis.from_url(args.url)
    summary = {}
    for cap in args.caps.split(","):
        phase = RedisBudget(args.url, f"{args.pool}-{cap}", calls=int(cap))
        counting = RedisCountingModel(url=args.url, counter=f"{args.counter}-{cap}")
        sync.incr(f"{args.pool}-{cap}:ready")
        while int(sync.get(f"{args.pool}-{cap}:ready") or 0) < args.workers:  # start together
            await asyncio.sleep(0.005)
        start = time.perf_counter()
        made = await asyncio.gather(
            *(one_request(phase, counting, args.per_request) for _ in range(args.requests))
        )
        phase.close()
        summary[cap] = {
            "calls": sum(made),
            "max_per_request": max(made),
            "seconds": time.perf_counter() - start,
        }
    print(json.dumps(summary), flush=True)


async def hang(args: argparse.Namespace, pool: RedisBudget, model: RedisCountingModel) -> None:
    sync = redis.Redis.from_url(args.url)
    tasks = [asyncio.create_task(one_request(pool, model, 1)) for _ in range(args.requests)]
    while int(sync.get(model.counter) or 0) < args.requests:
        await asyncio.sleep(0.01)
    print("IN_FLIGHT", flush=True)
    await asyncio.gather(*tasks)


async def drain(args: argparse.Namespace, pool: RedisBudget, model: RedisCountingModel) -> None:
    deadline = time.monotonic() + args.deadline
    counts = [await one_request(pool, model, 1)]
    print("STARTED", flush=True)

    async def loop() -> None:
        while time.monotonic() < deadline:
            made = await one_request(pool, model, 1)
            counts.append(made)
            if not made:  # refused: dry for good only when nothing is in flight anywhere
                if await pool.aheld() == 0 and await pool.aremaining_calls() == 0:
                    return
                await asyncio.sleep(0.05)

    await asyncio.gather(*(loop() for _ in range(args.requests)))
    print(json.dumps({"calls": sum(counts), "dry": time.monotonic() < deadline}), flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["burst", "hang", "drain"])
    p.add_argument("--url", required=True)
    p.add_argument("--pool", required=True)
    p.add_argument("--cap", type=int, required=True)
    p.add_argument("--counter", required=True)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--per-request", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--caps", default="", help="burst: comma-separated caps, one phase each")
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--ttl", type=float, default=30.0)
    p.add_argument("--deadline", type=float, default=30.0)
    args = p.parse_args(argv)
    pool = RedisBudget(args.url, args.pool, calls=args.cap, lease_ttl=args.ttl)
    model = RedisCountingModel(url=args.url, counter=args.counter, latency=args.latency)
    run = {"burst": burst, "hang": hang, "drain": drain}[args.mode]
    try:
        asyncio.run(run(args, pool, model))
    finally:
        pool.close()
    sys.exit(0)


if __name__ == "__main__":
    main()

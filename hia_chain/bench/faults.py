"""Many aligned requests sharing one pool against a fault-injecting server: does the count hold?

``python -m hia_chain.bench.faults --requests 2000 --fault-rate 0.3`` starts
:class:`~hia_chain.bench.fault_server.FaultServer` on 127.0.0.1, sends every request at once
through ``AlignedChatModel`` over ``ChatOpenAI`` at its default settings, all sharing one
``Budget`` pool, and prints: requests, pool size, calls the server received, calls the pool
charged, outcomes by type, p50/p99 request latency and wall time, plus the invariants
(server == pool <= pool size, no request over its budget, trace calls == server calls per
request, nothing held after).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hia_chain.bench.fault_server import FAULTS, FaultServer
from hia_chain.budget import ROLES, Budget

__all__ = ["FaultReport", "main", "run_faults"]


@dataclass
class FaultReport:
    """What a run measured; ``ok`` says whether every invariant held."""

    requests: int
    pool_size: int
    budget: int
    server_received: int
    pool_charged: int
    outcomes: Counter[str]
    faults: Counter[str]
    latencies: list[float]
    wall: float
    over_budget: int
    trace_mismatch: int
    held_after: int
    per_request_calls: dict[int, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            self.server_received == self.pool_charged <= self.pool_size
            and self.over_budget == 0
            and self.trace_mismatch == 0
            and self.held_after == 0
        )

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "pool_size": self.pool_size,
            "budget_per_request": self.budget,
            "server_received": self.server_received,
            "pool_charged": self.pool_charged,
            "outcomes": dict(self.outcomes),
            "faults_injected": dict(self.faults),
            "latency_p50_s": round(self.percentile(0.5), 3),
            "latency_p99_s": round(self.percentile(0.99), 3),
            "latency_max_s": round(max(self.latencies, default=0.0), 3),
            "wall_s": round(self.wall, 2),
            "requests_over_budget": self.over_budget,
            "trace_calls_mismatch": self.trace_mismatch,
            "held_after": self.held_after,
            "invariants_hold": self.ok,
        }


async def run_faults(
    *,
    requests: int = 1000,
    pool_size: int = 1500,
    budget: int = 2,
    fault_rate: float = 0.3,
    faults: Sequence[str] = FAULTS,
    timeout: float = 0.5,
    deadline: float = 6.0,
    retry_after: float = 1.0,
    delay: float = 0.0,
    seed: int = 0,
    cancel_within: float | None = None,
    max_connections: int | None = None,
) -> FaultReport:
    """Run ``requests`` concurrent aligned requests against a fault server; see the module doc.

    Args:
        cancel_within: Cancel each request at a random time within this many seconds.
        max_connections: Give ``ChatOpenAI`` an httpx client with this many connections.
    """
    from langchain_openai import ChatOpenAI

    from hia_chain.aligned import AlignedChatModel

    share = fault_rate / len(faults) if faults else 0.0
    server = FaultServer(
        {f: share for f in faults},
        seed=seed,
        delay=delay,
        slow_delay=timeout * 3,
        retry_after=retry_after,
    )
    pool = Budget(calls=pool_size)
    outcomes: Counter[str] = Counter()
    latencies: list[float] = []
    traced: dict[int, int] = {}
    async with server:
        extra: dict[str, Any] = {}
        if max_connections is not None:
            http = _sdk_httpx()
            limits = http.Limits(max_connections=max_connections)
            extra["http_async_client"] = http.AsyncClient(limits=limits)
        llm = ChatOpenAI(
            base_url=server.base_url,
            api_key="not-needed",  # type: ignore[arg-type]
            model="fault-server",
            **extra,
        )
        aligned = AlignedChatModel(
            model=llm,
            goal={"verbosity": 1.0},
            budget=budget,
            shared_budget=pool,
            timeout=timeout,
            deadline=deadline,
            max_tokens=64,
        )
        rng = random.Random(seed)

        async def one(i: int) -> None:
            started = time.perf_counter()
            try:
                coro = aligned.ainvoke(f"[req {i}] Explain why the sky is blue.")
                if cancel_within is not None:
                    message = await asyncio.wait_for(coro, rng.random() * cancel_within)
                else:
                    message = await coro
            except (TimeoutError, asyncio.TimeoutError) as exc:
                kind = "cancelled" if cancel_within is not None else type(exc).__name__
                outcomes[kind] += 1
            except Exception as exc:
                outcomes[f"error: {type(exc).__name__}"] += 1
            else:
                trace = message.response_metadata["hia"]
                traced[i] = int(trace["calls"])
                best = next(c for c in trace["candidates"] if c["id"] == trace["best"])
                outcomes["answered (empty)" if best["empty"] else "answered"] += 1
            latencies.append(time.perf_counter() - started)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        wall = time.perf_counter() - t0
        await asyncio.sleep(0.05)  # let the server read anything still in its socket buffers
    over = sum(1 for n in server.by_tag.values() if n > budget)
    mismatch = sum(1 for i, n in traced.items() if server.by_tag.get(i, 0) != n)
    held = sum(pool.held(role) for role in ROLES)
    return FaultReport(
        requests=requests,
        pool_size=pool_size,
        budget=budget,
        server_received=server.received,
        pool_charged=pool.usage().calls,
        outcomes=outcomes,
        faults=Counter({k: v for k, v in server.by_fault.items() if k != "ok"}),
        latencies=latencies,
        wall=wall,
        over_budget=over,
        trace_mismatch=mismatch,
        held_after=held,
        per_request_calls=dict(server.by_tag),
    )


def _sdk_httpx() -> Any:
    """The httpx flavour the installed openai SDK takes (``httpx2`` from openai 3 on)."""
    try:
        return importlib.import_module("httpx2")
    except ImportError:
        return importlib.import_module("httpx")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hia_chain.bench.faults", description=__doc__)
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--pool", type=int, default=None, help="pool size (default 1.5 × requests)")
    p.add_argument("--budget", type=int, default=2, help="calls per request")
    p.add_argument("--fault-rate", type=float, default=0.3)
    p.add_argument("--timeout", type=float, default=3.0, help="per-call timeout, seconds")
    p.add_argument("--deadline", type=float, default=30.0, help="per-request deadline, seconds")
    p.add_argument("--retry-after", type=float, default=1.0)
    p.add_argument("--cancel-within", type=float, default=None)
    p.add_argument("--max-connections", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    report = asyncio.run(
        run_faults(
            requests=args.requests,
            pool_size=args.pool or (3 * args.requests) // 2,
            budget=args.budget,
            fault_rate=args.fault_rate,
            timeout=args.timeout,
            deadline=args.deadline,
            retry_after=args.retry_after,
            seed=args.seed,
            cancel_within=args.cancel_within,
            max_connections=args.max_connections,
        )
    )
    d = report.as_dict()
    if args.json:
        print(json.dumps(d, indent=2))
    else:
        for k, v in d.items():
            print(f"{k:>22}: {v}")
        print(f"{'latency_mean_s':>22}: {statistics.fmean(report.latencies):.3f}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())

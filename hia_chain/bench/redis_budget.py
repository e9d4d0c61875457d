"""Benchmark: what a Redis budget pool costs next to the in-process ``Budget``.

Prints, against a local ``redis-server`` (started here unless ``--url`` is given):

* reservations per second (reserve + settle of one call, through a per-request ``Budget``
  whose parent is the pool) for ``Budget`` and for ``RedisBudget`` with 1 and 8 processes;
* the latency the Redis pool adds per call (p50/p99 of reserve + settle, minus in-process);
* calls granted vs the cap M, for 1 and 8 processes over-asking one pool.

Run: ``python -m hia_chain.bench.redis_budget`` (``--seconds`` per measurement, default 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid

from hia_chain.bench.redis_server import local_redis_server
from hia_chain.budget import BaseBudget, Budget
from hia_chain.redis_budget import RedisBudget


async def _one(pool: BaseBudget) -> bool:
    """One request's call: reserve through a per-request budget, then settle (no model)."""
    request = Budget(calls=1, parent=pool)
    r = await request.areserve("response")
    if r is None:
        return False
    await request.asettle(r, 10, 5)
    return True


async def _throughput(pool: BaseBudget, seconds: float, concurrency: int) -> int:
    """Reservations made in ``seconds`` by ``concurrency`` loops (each stops when refused)."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            made = await _one(pool)  # not `done += await ...`: that reads `done` before awaiting
            if not made:
                return
            done += made

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return done


async def _latencies(pool: BaseBudget, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await _one(pool)
        out.append(time.perf_counter() - t)
    return out


def _worker(url: str, name: str, cap: int | None, seconds: float, concurrency: int, n: int) -> None:
    import redis

    pool = RedisBudget(url, name, calls=cap)
    sync = redis.Redis.from_url(url)

    async def run() -> int:
        await pool.aheld()  # connect before the clock starts
        sync.incr(f"{name}:ready")
        while int(sync.get(f"{name}:ready") or 0) < n:  # all processes start together
            await asyncio.sleep(0.005)
        return await _throughput(pool, seconds, concurrency)

    try:
        print(json.dumps({"reservations": asyncio.run(run())}), flush=True)
    finally:
        pool.close()


def _processes(url: str, n: int, cap: int | None, seconds: float, concurrency: int) -> int:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    args = [sys.executable, "-m", "hia_chain.bench.redis_budget", "--worker", url, name]
    args += [str(cap or 0), str(seconds), str(concurrency), str(n)]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [p.communicate(timeout=120 + seconds)[0] for p in procs]
    if any(p.returncode for p in procs):
        msg = "A benchmark worker failed; see its error above."
        raise RuntimeError(msg)
    return sum(json.loads(o.strip().splitlines()[-1])["reservations"] for o in outs)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="an existing Redis (default: start a local redis-server)")
    p.add_argument("--seconds", type=float, default=2.0, help="length of each measurement")
    p.add_argument("--concurrency", type=int, default=32, help="concurrent requests per process")
    p.add_argument("--latency-samples", type=int, default=500)
    p.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        url, name, cap, seconds, concurrency, n = args.worker
        _worker(url, name, int(cap) or None, float(seconds), int(concurrency), int(n))
        return
    if args.url:
        _report(args.url, args)
    else:
        with local_redis_server() as server:
            _report(server.url, args)


def _report(url: str, args: argparse.Namespace) -> None:
    secs, conc = args.seconds, args.concurrency
    print(f"Redis: {url}; {secs:g} s per measurement, {conc} concurrent requests per process, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    local = Budget()
    n = asyncio.run(_throughput(local, secs, conc))
    print(f"Budget (in-process), 1 process:  {n / secs:10.0f} reservations/s")

    async def one_process() -> tuple[int, list[float], list[float]]:
        pool = RedisBudget(url, f"bench-{uuid.uuid4().hex[:8]}")
        try:
            await pool.aremaining_calls()
            made = await _throughput(pool, secs, conc)
            base = await _latencies(Budget(), args.latency_samples)
            redis_lat = await _latencies(pool, args.latency_samples)
            return made, base, redis_lat
        finally:
            pool.close()

    made, base, redis_lat = asyncio.run(one_process())
    print(f"RedisBudget, this process:       {made / secs:10.0f} reservations/s")
    for procs in (1, 8):
        total = _processes(url, procs, None, secs, conc)
        print(
            f"RedisBudget, {procs} process(es):     {total / secs:10.0f} reservations/s (all together)"
        )
    q = statistics.quantiles
    added = [r - statistics.median(base) for r in redis_lat]
    p50, p99 = statistics.median(added) * 1e3, q(added, n=100)[98] * 1e3
    print(
        f"Added latency per call (reserve + settle, sequential): p50 {p50:.3f} ms, p99 {p99:.3f} ms"
    )
    for procs in (1, 8):
        for cap in (100, 1000):
            seen = _processes(url, procs, cap, 60.0, conc)  # each runs until refused
            print(f"Cap M={cap:5d}, {procs} process(es) asking until refused: {seen} granted")


if __name__ == "__main__":
    main()

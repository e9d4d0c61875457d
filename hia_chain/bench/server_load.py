"""What ``hia-chain serve`` adds: requests/s and p50/p99 latency through the server versus
calling the same fake upstream directly, with the same requests, at 1 and 4 workers.

    python -m hia_chain.bench.server_load                 # passthrough, ~1 minute
    python -m hia_chain.bench.server_load --aligned       # with hia (budget 2): the search's cost too

The fake upstream (:mod:`hia_chain.bench.fake_upstream`) runs in its own process, the load
generator in this one (httpx, ``--concurrency`` requests in flight). On a small machine all
three compete for the same cores, so read the figures as an upper bound on the overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import httpx

from hia_chain.bench.fake_upstream import MODEL
from hia_chain.local.serve import free_port
from hia_chain.server import running_server

ASK = [{"role": "user", "content": "Why is the sky blue?"}]


async def _load(
    url: str, body: dict[str, Any], n: int, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        queue = iter(range(n))

        async def worker() -> None:
            for _ in queue:
                t = time.perf_counter()
                r = await http.post(url, json=body, headers={"Authorization": "Bearer bench"})
                r.raise_for_status()
                latencies.append(time.perf_counter() - t)

        for _ in range(min(20, n)):  # warm the connections
            await http.post(url, json=body)
        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        return time.perf_counter() - started, latencies


def _stats(label: str, seconds: float, lat: list[float]) -> tuple[float, float, float]:
    lat = sorted(lat)
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    rps = len(lat) / seconds
    print(f"  {label:<22} {rps:8.0f} req/s   p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")
    return rps, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--aligned", action="store_true", help="send hia (budget 2) requests")
    args = parser.parse_args()

    port = free_port()
    upstream = subprocess.Popen(
        [sys.executable, "-m", "hia_chain.bench.fake_upstream", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert upstream.stdout is not None  # noqa: S101
        upstream.stdout.readline()  # "fake upstream at ..."
        base = f"http://127.0.0.1:{port}/v1"
        body: dict[str, Any] = {"model": MODEL, "messages": ASK, "max_tokens": 32}
        print(f"{args.requests} requests, {args.concurrency} in flight, on {os.cpu_count()} CPUs")
        seconds, lat = asyncio.run(
            _load(f"{base}/chat/completions", body, args.requests, args.concurrency)
        )
        print("direct to the fake upstream:")
        _, d50, d99 = _stats("direct", seconds, lat)
        if args.aligned:
            body = {**body, "hia": {"goal": {"verbosity": 1}, "budget": 2}}
        for workers in args.workers:
            flags = ["--upstream-base-url", base, "--upstream-model", MODEL]
            flags += ["--workers", str(workers), "--log-level", "warning"]
            with running_server(flags) as server:
                url = f"{server.base_url}/chat/completions"
                seconds, lat = asyncio.run(_load(url, body, args.requests, args.concurrency))
            print(
                f"through hia-chain serve, {workers} worker(s){' (aligned)' if args.aligned else ''}:"
            )
            _, s50, s99 = _stats(f"{workers} worker(s)", seconds, lat)
            print(f"  added by the server:   p50 +{s50 - d50:.2f} ms   p99 +{s99 - d99:.2f} ms")
    finally:
        upstream.terminate()
        upstream.wait(timeout=10)


if __name__ == "__main__":
    main()

"""RedisBudget on a real redis-server, across real processes.

Why real processes and a real server: what RedisBudget promises (one cap for many workers,
atomic check-and-reserve, leases of a killed worker charged and the pool usable again, fail
closed when Redis is gone) is about processes and a server, which no in-process fake shows.
The fake "provider" counts the calls it receives in Redis, apart from the budget's ledger.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
import redis

from hia_chain import Budget, BudgetExceededError, ConfigError, Limits, Price, RedisBudget
from hia_chain.bench.redis_server import LocalRedis, local_redis_server
from hia_chain.budget import Hold
from hia_chain.calls import call_model
from hia_chain.context import RunContext
from hia_chain.errors import StoreUnavailableError

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _worker(mode: str, server: LocalRedis, pool: str, cap: int, counter: str, *extra: str) -> Any:
    args = [sys.executable, "-m", "tests.integration_tests.redis_workers", mode]
    args += ["--url", server.url, "--pool", pool, "--cap", str(cap), "--counter", counter]
    path = [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    return subprocess.Popen(
        [*args, *extra],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def _finish_quietly(proc: subprocess.Popen[str]) -> None:
    """Kill a worker a failed test left behind, and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"pool-{tag}", f"provider-calls-{tag}"


def test_eight_processes_share_one_cap_exactly(redis_server: LocalRedis) -> None:
    """8 processes x 500 concurrent requests (2 calls each, trying 3), for M = 100 and 1,000:
    the provider sees exactly M calls, and no request makes more than its own 2."""
    pool, counter = _names()
    caps = (100, 1000)
    procs = [
        _worker(
            "burst",
            redis_server,
            pool,
            0,
            counter,
            "--workers",
            "8",
            "--requests",
            "500",
            "--caps",
            ",".join(map(str, caps)),
        )  # fmt: skip
        for _ in range(8)
    ]
    try:
        results = [_finish(p) for p in procs]
    finally:
        for p in procs:
            _finish_quietly(p)
    for cap in caps:
        phase = [r[str(cap)] for r in results]
        provider = int(redis.Redis.from_url(redis_server.url).get(f"{counter}-{cap}") or 0)
        assert provider == cap  # demand was 8 x 500 x 2 = 8,000 calls
        assert sum(r["calls"] for r in phase) == cap
        assert max(r["max_per_request"] for r in phase) <= 2  # none over its own budget

        async def ledger(cap: int = cap) -> tuple[Any, int]:
            budget = RedisBudget(redis_server.url, f"{pool}-{cap}", calls=cap)
            try:
                return await budget.ausage(), await budget.aheld()
            finally:
                budget.close()

        usage, held = anyio.run(ledger)
        assert (usage.calls, usage.unreported, held) == (cap, 0, 0)
        assert usage.input_tokens == 3 * cap


def test_sigkilled_worker_leases_are_charged_and_the_pool_goes_on(redis_server: LocalRedis) -> None:
    cap, in_flight, ttl = 60, 10, "3.0"  # a loaded machine may take a second to look
    pool, counter = _names()
    victim = _worker("hang", redis_server, pool, cap, counter, "--requests", str(in_flight),
                     "--latency", "600", "--ttl", ttl)  # fmt: skip
    assert victim.stdout is not None
    line = victim.stdout.readline()
    assert line.strip() == "IN_FLIGHT", victim.stderr.read() if victim.stderr else ""
    survivors = [
        _worker(
            "drain",
            redis_server,
            pool,
            cap,
            counter,
            "--requests",
            "5",
            "--latency",
            "0.01",
            "--ttl",
            ttl,
            "--deadline",
            "60",
        )  # fmt: skip
        for _ in range(2)
    ]
    for proc in survivors:  # running (and soon refused: the victim holds the last calls)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "STARTED"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    killed_at = time.monotonic()

    async def held_now() -> int:
        budget = RedisBudget(redis_server.url, pool, calls=cap)
        try:
            return await budget.aheld()
        finally:
            budget.close()

    assert anyio.run(held_now) >= in_flight  # the dead worker's leases still hold the pool
    results = [_finish(p) for p in survivors]
    # The survivors waited for the leases to expire: renewed every TTL/3, the dead worker's
    # last renewal was at most TTL/3 before the kill, so they expire 2/3 TTL to TTL after it.
    assert time.monotonic() - killed_at >= 2 * 3.0 / 3 - 0.1
    assert all(r["dry"] for r in results)

    async def state() -> tuple[Any, int, int | None]:
        budget = RedisBudget(redis_server.url, pool, calls=cap)
        try:
            return await budget.ausage(), await budget.aheld(), await budget.aremaining_calls()
        finally:
            budget.close()

    usage, held, remaining = anyio.run(state)
    provider = int(redis.Redis.from_url(redis_server.url).get(counter) or 0)
    # The killed worker's 10 calls reached the provider and are charged at their bound
    # (unreported); the survivors used exactly the rest.
    assert sum(r["calls"] for r in results) == cap - in_flight
    assert provider == cap
    assert (usage.calls, usage.unreported, held, remaining) == (cap, in_flight, 0, 0)


async def test_redis_stopped_mid_run_fails_closed() -> None:
    with local_redis_server() as server:
        counted = _LocalCounter()
        pool = _CountingPool(server.url, "down", calls=100_000, lease_ttl=1.0)
        errors: list[BaseException] = []
        stopped = anyio.Event()

        async def worker() -> None:
            while not stopped.is_set():
                try:
                    await _one_call(pool, counted)
                except StoreUnavailableError as e:
                    errors.append(e)
                    return
                except BaseException as e:  # anything untyped fails the test below
                    errors.append(e)
                    return

        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(worker)
            with anyio.fail_after(30):  # calls flowing (a loaded machine starts slowly)
                while counted.calls < 20:
                    await anyio.sleep(0.02)
            await anyio.to_thread.run_sync(server.stop)
            await anyio.sleep(0.2)
            stopped.set()
        assert errors and all(isinstance(e, StoreUnavailableError) for e in errors), errors
        assert counted.calls <= pool.granted  # every call the model saw had a reservation
        message = str(errors[0])
        assert "Redis" in message and server.url in message
        before = counted.calls
        for _ in range(20):  # Redis down: typed errors, no call
            with pytest.raises(StoreUnavailableError, match="unavailable"):
                await _one_call(pool, counted)
        await anyio.to_thread.run_sync(server.start)
        for _ in range(5):  # back, but empty: the pool is lost, never started from zero
            with pytest.raises(StoreUnavailableError, match="no longer has budget pool"):
                await _one_call(pool, counted)
        assert counted.calls == before
        await pool.aclose()


class _LocalCounter:
    calls = 0


class _CountingPool(RedisBudget):
    """Counts the holds Redis granted, to check every model call had one."""

    granted = 0

    async def hold(self, hold: Hold) -> bool:
        ok = await super().hold(hold)
        self.granted += int(ok)
        return ok


async def _one_call(pool: RedisBudget, counter: _LocalCounter) -> None:
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from langchain_core.messages import AIMessage

    class Counting(GenericFakeChatModel):
        async def _agenerate(self, *a: Any, **kw: Any) -> Any:
            counter.calls += 1
            await anyio.sleep(0.005)
            return await super()._agenerate(*a, **kw)

    ctx = RunContext(budget=Budget(calls=1, parent=pool))
    await call_model(ctx, "response", Counting(messages=iter([AIMessage("ok")])), "hi", bound=None)


async def test_token_and_cost_caps_and_settlement(redis_server: LocalRedis) -> None:
    prices = {"response": Price(1_000_000, 2_000_000)}  # 1 and 2 per token: easy arithmetic
    pool = RedisBudget(redis_server.url, _names()[0], calls=10, tokens=300, cost=1000.0,
                       prices=prices, limits={"judge": Limits(calls=1)})  # fmt: skip
    try:
        r1 = await pool.areserve("response", tokens=200, output_tokens=100)  # cost 100 + 200
        assert r1 is not None
        assert await pool.areserve("response", tokens=200, output_tokens=100) is None  # tokens
        await pool.asettle(r1, 50, 10)  # 50 + 20 = 70
        assert await pool.acharged() == (60, 70.0)
        r2 = await pool.areserve("response", tokens=200, output_tokens=100)
        assert r2 is not None
        await pool.asettle_failed(r2)  # error status: the input bound (100 tokens at 1)
        assert await pool.acharged() == (160, 170.0)
        r3 = await pool.areserve("response", tokens=100, output_tokens=50)
        assert r3 is not None
        await pool.arelease(r3)  # never sent: nothing
        usage = await pool.ausage()
        assert (usage.calls, usage.input_tokens, usage.failed, usage.unreported) == (2, 50, 1, 1)
        judge = await pool.areserve("judge")
        assert judge is not None and await pool.areserve("judge") is None
        await pool.asettle(judge)
        with pytest.raises(BudgetExceededError):
            async with pool.spend("judge"):
                pass
        assert await pool.aremaining_calls() == 8
    finally:
        await pool.aclose()


async def test_reset_period_starts_the_caps_afresh(redis_server: LocalRedis) -> None:
    pool = RedisBudget(redis_server.url, _names()[0], calls=2, period=1)
    try:
        for _ in range(2):
            r = await pool.areserve("response")
            assert r is not None
            await pool.asettle(r, 1, 1)
        if await pool.areserve("response") is not None:  # the period rolled over just now
            pytest.skip("crossed a period boundary mid-test")
        await anyio.sleep(1.05)
        r = await pool.areserve("response")
        assert r is not None and (await pool.ausage()).calls == 0  # a new period's ledger
    finally:
        await pool.aclose()


async def test_budget_is_usable_from_sync_entry_points_loops(redis_server: LocalRedis) -> None:
    """Each sync request runs in a fresh event loop; the pool is one across them."""
    pool = RedisBudget(redis_server.url, _names()[0], calls=3)

    def request() -> bool:
        async def go() -> bool:
            r = await Budget(calls=5, parent=pool).areserve("response")
            if r is not None:
                await r.levels[0].asettle(r, 1, 1)
            return r is not None

        return anyio.run(go)

    try:
        made = [await anyio.to_thread.run_sync(request) for _ in range(5)]
        assert made == [True, True, True, False, False]
    finally:
        await pool.aclose()


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="url"):
        RedisBudget("http://127.0.0.1:6379", "x")
    with pytest.raises(ConfigError, match="name"):
        RedisBudget("redis://127.0.0.1:6379/0", "a{b}")
    with pytest.raises(ConfigError, match="lease_ttl"):
        RedisBudget(lease_ttl=0)
    with pytest.raises(ConfigError, match="period"):
        RedisBudget(period=0.5)
    with pytest.raises(ConfigError, match="prices"):
        RedisBudget(cost=1.0)
    assert "***" in repr(RedisBudget("redis://:s3cret@127.0.0.1:6379/0", "x"))


def test_aligned_chat_model_draws_from_a_redis_pool_sync_and_async(
    redis_server: LocalRedis,
) -> None:
    """``shared_budget=RedisBudget(...)``: the pool caps AlignedChatModel's response calls,
    through the async API and the sync one (a fresh event loop per request)."""
    from hia_chain import AlignedChatModel, Objective
    from tests.unit_tests.fakes import CountingChatModel, WordCountScorer, instruction_following

    pool = RedisBudget(redis_server.url, _names()[0], calls=5)
    model = CountingChatModel(answer=instruction_following(0))
    aligned = AlignedChatModel(
        model=model, objectives=[Objective("verbosity")], scorers=[WordCountScorer()],
        goal={"verbosity": 1}, budget=2, shared_budget=pool,
    )  # fmt: skip
    try:
        first = aligned.invoke("Explain how vaccines work.")
        second = anyio.run(aligned.ainvoke, "Explain rain.")
        third = aligned.invoke("Explain snow.")  # one call left in the pool
        assert [m.response_metadata["hia"]["calls"] for m in (first, second, third)] == [2, 2, 1]
        with pytest.raises(BudgetExceededError):
            aligned.invoke("Explain hail.")
        usage = anyio.run(pool.ausage)
        assert model.calls == usage.calls == 5
    finally:
        pool.close()

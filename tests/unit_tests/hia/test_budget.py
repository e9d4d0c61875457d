import threading

import anyio
import pytest

from hia_chain.budget import Budget, Limits, Price
from hia_chain.errors import BudgetExceededError, ConfigError


def test_reserve_settle_release() -> None:
    b = Budget(calls=2)
    r1 = b.try_reserve("response")
    r2 = b.try_reserve("response")
    assert r1 and r2
    assert b.try_reserve("response") is None
    b.release(r2)
    assert b.remaining_calls() == 1
    b.settle(r1, 10, 5)
    assert b.usage().calls == 1 and b.usage().total_tokens == 15
    assert b.remaining_calls() == 1


def test_parent_pool_caps_children() -> None:
    pool = Budget(calls=3)
    a, c = Budget(calls=2, parent=pool), Budget(calls=2, parent=pool)
    held = [a.try_reserve("response"), a.try_reserve("response"), c.try_reserve("response")]
    assert all(held)
    assert c.try_reserve("response") is None  # c has room, the pool does not
    assert c.remaining_calls() == 0


def test_token_cap_needs_bound_and_holds() -> None:
    b = Budget(calls=10, tokens=100)
    with pytest.raises(ConfigError, match="max_tokens"):
        b.try_reserve("response")
    r = b.try_reserve("response", tokens=80)
    assert r and b.try_reserve("response", tokens=30) is None
    b.settle(r, 20, 10)
    assert b.try_reserve("response", tokens=70) is not None


def test_unreported_usage_is_not_invented_but_still_charged() -> None:
    b = Budget(tokens=100)
    r = b.try_reserve("response", tokens=60)
    assert r
    usage = b.settle(r)
    assert usage.total_tokens == 0 and usage.unreported == 1
    assert b.try_reserve("response", tokens=50) is None


def test_cost_cap_and_roles() -> None:
    with pytest.raises(ConfigError, match="prices"):
        Budget(cost=1.0)
    b = Budget(
        cost=1.0,
        prices={"response": Price(input_per_million=1e5, output_per_million=1e5)},
        limits={"judge": Limits(calls=1)},
    )
    r = b.try_reserve("response", tokens=5)
    assert r
    b.settle(r, 3, 2)
    assert b.usage().cost == pytest.approx(0.5)
    assert b.try_reserve("response", tokens=6) is None  # 0.6 more would pass 1.0
    assert b.try_reserve("judge") and b.try_reserve("judge") is None
    with pytest.raises(ConfigError, match="Unknown budget role"):
        b.try_reserve("planner")  # type: ignore[arg-type]


def test_threads_never_overspend() -> None:
    pool = Budget(calls=50)
    got: list[int] = []

    def worker() -> None:
        for _ in range(40):
            r = pool.try_reserve("response")
            if r:
                pool.settle(r, 1, 1)
                got.append(1)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 50 and pool.usage().calls == 50


async def test_spend_releases_on_cancel_and_counts_failures() -> None:
    b = Budget(calls=2)
    with anyio.move_on_after(0.01):
        async with b.spend("response"):
            await anyio.sleep(1)
    assert b.remaining_calls() == 2 and b.usage().calls == 0
    with pytest.raises(RuntimeError):
        async with b.spend("response"):
            raise RuntimeError("provider said no")
    assert b.usage().calls == 1 and b.usage().unreported == 1
    async with b.spend("response"):
        pass
    with pytest.raises(BudgetExceededError):
        async with b.spend("response"):
            pass

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


async def test_calls_cancelled_or_failed_in_flight_count_at_their_bound() -> None:
    """The provider may bill a call it received, whatever happened to it on our side."""
    b = Budget(calls=3, tokens=1000)
    with anyio.move_on_after(0.01):
        async with b.spend("response", tokens=300):
            await anyio.sleep(1)
    assert b.remaining_calls() == 2 and b.usage().calls == 1 and b.usage().unreported == 1
    with pytest.raises(RuntimeError):
        async with b.spend("response", tokens=300):
            raise RuntimeError("provider said no")
    assert b.usage().calls == 2 and b.usage().unreported == 2
    # both bounds are charged to the token cap: 600 of 1000 used, so 500 more does not fit
    assert b.try_reserve("response", tokens=500) is None
    async with b.spend("response", tokens=300):
        pass
    assert b.remaining_calls() == 0
    with pytest.raises(BudgetExceededError):
        async with b.spend("response", tokens=1):
            pass


def test_a_reservation_never_taken_is_given_back_whole() -> None:
    pool = Budget(calls=2, tokens=100)
    child = Budget(calls=1, parent=pool)
    r = child.try_reserve("response", tokens=60)
    assert r is not None and pool.try_reserve("response", tokens=60) is None
    child.release(r)
    assert pool.remaining_calls() == 2 and pool.usage().calls == 0
    assert pool.try_reserve("response", tokens=100) is not None


def test_each_level_prices_with_its_own_prices() -> None:
    pool = Budget(cost=1.0, prices={"response": Price(10.0, 10.0)})
    cheap = Budget(calls=5, cost=1.0, prices={"response": Price(0.0, 0.0)}, parent=pool)
    r = cheap.try_reserve("response", tokens=50_000)
    assert r is not None
    cheap.settle(r, 40_000, 10_000)
    assert cheap.usage().cost == 0.0 and pool.usage().cost == pytest.approx(0.5)
    assert cheap.try_reserve("response", tokens=60_000) is None  # the pool's cap still binds


def test_a_cost_cap_without_prices_anywhere_is_refused() -> None:
    with pytest.raises(ConfigError, match="prices"):
        Budget(calls=5, cost=0.001, parent=Budget(calls=10))
    with pytest.raises(ConfigError, match="Limits"):
        Budget(limits={"judge": 5})  # type: ignore[dict-item]

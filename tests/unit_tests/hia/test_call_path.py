"""The one call path and the rules of issue 9, with fakes (control flow only; the same rules
are checked against a real HTTP server in tests/integration_tests/test_faults.py).

Numbered items refer to issue 9's list.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import anyio
import httpx
import pytest
from langchain_core.exceptions import (
    ModelAPIError,
    ModelConnectionError,
    ModelInvalidRequestError,
    ModelRateLimitError,
    ModelTimeoutError,
)

from hia_chain import AlignedChatModel
from hia_chain.budget import BaseBudget, Budget, Hold, Price, Role, Usage
from hia_chain.calls import TokenBound, attempt_state, call
from hia_chain.context import RunContext, estimate_tokens
from hia_chain.errors import BudgetExceededError, ConfigError
from hia_chain.instructions import added_text
from hia_chain.retry import is_transient, retry_after
from hia_chain.scorers.text import ComplexityScorer
from hia_chain.search.types import MAX_BUDGET, MAX_CANDIDATES, SearchSettings
from tests.unit_tests.fakes import CountingChatModel, FatalError, instruction_following

# -- the level interface: a budget whose levels suspend, like a Redis one --------------------


class SlowLevel(BaseBudget):
    """An async level kept in a dict, suspending at every step (a stand-in for Redis)."""

    def __init__(self, *args: Any, fail_hold: bool = False, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.holds: dict[str, Hold] = {}
        self.ledger = Usage()
        self.charged_calls = 0
        self.fail_hold = fail_hold

    async def hold(self, hold: Hold) -> bool:
        await anyio.sleep(0)
        if self.fail_hold:
            raise ConnectionError("store down")
        cap = self.limits(hold.role).calls
        if cap is not None and self.charged_calls + len(self.holds) + 1 > cap:
            return False
        self.holds[hold.id] = hold
        return True

    async def commit(
        self, hold: Hold, spent: Usage, *, charged_tokens: int, charged_cost: float
    ) -> None:
        await anyio.sleep(0)
        self.holds.pop(hold.id, None)
        self.ledger.add(spent)
        self.charged_calls += spent.calls

    async def unhold(self, hold: Hold) -> None:
        await anyio.sleep(0)
        self.holds.pop(hold.id, None)

    async def headroom(self, role: Role) -> int | None:
        cap = self.limits(role).calls
        return None if cap is None else cap - self.charged_calls - len(self.holds)

    async def spent(self, role: Role) -> Usage:
        return self.ledger


async def test_an_async_level_serves_as_the_shared_pool() -> None:
    pool = SlowLevel(calls=3)
    a, b = Budget(calls=2, parent=pool), Budget(calls=2, parent=pool)
    r1, r2, r3 = [await x.areserve("response") for x in (a, a, b)]
    assert r1 and r2 and r3 and len({r1.id, r2.id, r3.id}) == 3
    assert await b.areserve("response") is None  # b has room, the pool does not
    assert r1.holds[0].id == r1.holds[1].id == r1.id  # one lease key for every level
    await a.asettle(r1, 10, 5)
    await a.arelease(r2)
    await b.asettle_failed(r3)
    assert pool.ledger.calls == 2 and pool.ledger.failed == 1 and not pool.holds
    assert await b.aremaining_calls() == 1
    with pytest.raises(ConfigError, match="async methods"):
        a.try_reserve("response")  # the sync helpers need every level in-process


async def test_a_level_that_fails_leaves_nothing_held_below_it() -> None:
    child = Budget(calls=5, parent=SlowLevel(calls=5, fail_hold=True))
    with pytest.raises(ConnectionError, match="store down"):
        await child.areserve("response")
    assert child.held() == 0 and child.remaining_calls is not None


async def test_settlement_rules_reported_failed_unknown_released() -> None:
    """Reported → exactly; error status → call + input bound; unknown → bound; unsent → 0."""
    prices = {"response": Price(input_per_million=1e6, output_per_million=2e6)}
    b = Budget(tokens=1000, cost=1000.0, prices=prices)

    async def settle(kind: str) -> None:
        r = await b.areserve("response", tokens=100, output_tokens=60)
        assert r is not None
        if kind == "reported":
            await b.asettle(r, 7, 3)
        elif kind == "failed":
            await b.asettle_failed(r)
        elif kind == "unknown":
            await b.asettle(r)
        else:
            await b.arelease(r)

    for kind, tokens, cost in (
        ("reported", 10, 7 + 6),
        ("failed", 40, 40),  # the 40 input tokens of the bound, none of the 60 output
        ("unknown", 100, 40 + 120),
        ("released", 0, 0),
    ):
        before = b._charged["response"].tokens, b._charged["response"].cost
        await settle(kind)
        after = b._charged["response"].tokens, b._charged["response"].cost
        assert (after[0] - before[0], after[1] - before[1]) == (tokens, pytest.approx(cost)), kind
    assert b.usage().calls == 3 and b.usage().failed == 1 and b.usage().unreported == 2


# -- the call path --------------------------------------------------------------------------


async def test_a_call_not_written_is_released_and_one_written_is_charged() -> None:
    """Item 3 (control flow): an instrumented transport that never saw the request → free."""
    budget = Budget(calls=2)
    ctx = RunContext(budget, timeout=0.05)

    async def queued_forever() -> Any:  # waits for a connection, never writes
        state = attempt_state()
        assert state is not None
        state.exact = True
        await anyio.sleep(10)

    with pytest.raises(TimeoutError):
        await call(ctx, "response", queued_forever, bound=None)
    assert budget.usage().calls == 0 and budget.held() == 0

    async def written_then_slow() -> Any:
        state = attempt_state()
        assert state is not None
        state.exact, state.written = True, 1
        await anyio.sleep(10)

    with pytest.raises(TimeoutError, match="timeout of 0.05 s"):
        await call(ctx, "response", written_then_slow, bound=None)
    assert budget.usage().calls == 1 and budget.usage().unreported == 1


async def test_an_http_error_status_is_charged_as_failed() -> None:
    budget = Budget(calls=3, tokens=1000)
    ctx = RunContext(budget)
    response = httpx.Response(400, request=httpx.Request("POST", "http://127.0.0.1/v1"))

    async def bad_request() -> Any:
        raise httpx.HTTPStatusError("content filter", request=response.request, response=response)

    with pytest.raises(httpx.HTTPStatusError):
        await call(ctx, "response", bad_request, bound=TokenBound(200, 300))
    assert budget.usage().failed == 1 and budget._charged["response"].tokens == 200


async def test_retry_after_is_waited_and_the_deadline_stops_retries() -> None:
    """Item 7 (control flow)."""

    class Limited(Exception):
        status_code = 429
        retry_after = 0.3

    budget = Budget(calls=5)
    attempts: list[float] = []

    async def limited_once() -> Any:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise Limited
        return "ok"

    assert await call(RunContext(budget), "response", limited_once, bound=None, retries=2) == "ok"
    assert attempts[1] - attempts[0] >= 0.29 and budget.usage().calls == 2
    attempts.clear()
    ctx = RunContext(Budget(calls=5), deadline=time.monotonic() + 0.1)

    async def always_limited() -> Any:
        attempts.append(time.monotonic())
        raise Limited

    with pytest.raises(Limited):
        await call(ctx, "response", always_limited, bound=None, retries=3)
    assert len(attempts) == 1  # the wait would pass the deadline: no second paid attempt


def test_the_transient_set_is_recognised_without_importing_sdks() -> None:
    """Item 8: class names, status codes, ``status_code``/``retry_after`` attributes."""

    def named(name: str, **attrs: Any) -> BaseException:
        return type(name, (Exception,), attrs)()

    request = httpx.Request("POST", "http://127.0.0.1/v1")
    transient = [
        ModelRateLimitError("x"),
        ModelTimeoutError("x"),
        ModelConnectionError("x"),
        ModelAPIError("x"),
        httpx.ReadError("x"),
        httpx.WriteError("x"),
        httpx.HTTPStatusError("x", request=request, response=httpx.Response(429, request=request)),
        httpx.HTTPStatusError("x", request=request, response=httpx.Response(503, request=request)),
        named("OverloadedError", status_code=529),
        named("APIStatusError", status_code=529),
        named("ServerDisconnectedError"),  # aiohttp
        named("ClientOSError"),
        named("ResourceExhausted", code=429),  # google-api-core
        named("ServiceUnavailable", code=503),
        named("Throttled", retry_after=2.0),
    ]
    assert [type(e).__name__ for e in transient if not is_transient(e)] == []
    fatal = [
        ModelInvalidRequestError("x"),
        named("BadRequestError", status_code=400),
        httpx.HTTPStatusError("x", request=request, response=httpx.Response(401, request=request)),
        FatalError("bad key"),
    ]
    assert [type(e).__name__ for e in fatal if is_transient(e)] == []
    headers = httpx.Response(429, headers={"retry-after": "3"}, request=request)
    assert retry_after(httpx.HTTPStatusError("x", request=request, response=headers)) == 3.0
    assert retry_after(named("X", retry_after=timedelta(seconds=4))) == 4.0


# -- settings, bounds and input limits ------------------------------------------------------


def test_token_bounds_count_bytes_not_characters() -> None:
    """Item 1 (bound): one CJK character is 3 bytes and up to 2 tokens, an emoji 4 bytes."""
    chinese, emoji = "气候变化" * 70, "🙂" * 90
    assert estimate_tokens(chinese, 16) == len(chinese.encode()) + 64 + 16
    assert estimate_tokens(emoji, 16) == 360 + 64 + 16  # old code: 90 + 64 + 16 (below 100)


def test_budget_and_candidates_have_upper_limits() -> None:
    """Item 11: a ConfigError naming the limit, before anything is built."""
    with pytest.raises(ConfigError, match=f"limit of {MAX_BUDGET}"):
        SearchSettings(budget=10**6)
    with pytest.raises(ConfigError, match=f"limit of {MAX_CANDIDATES}"):
        SearchSettings(budget=2, candidates_per_round=10**6)
    model = AlignedChatModel(model=CountingChatModel(), goal={"verbosity": 1})
    with pytest.raises(ConfigError, match="MAX_BUDGET"):
        model.plan(budget=10**6)
    with pytest.raises(ConfigError, match="MAX_BUDGET"):
        model.invoke("Hi", budget=10**6)


def test_added_text_is_linear_on_a_20k_word_prompt() -> None:
    """Item 12: old difflib version took >100 s on a repetitive 20k-word prompt."""
    prompt = " ".join(["the cat sat on the mat and the dog ran"] * 2000)
    started = time.perf_counter()
    assert added_text(prompt, "Be brief. " + prompt + " Use bullet points.") == (
        "Be brief. Use bullet points."
    )
    assert added_text(prompt, prompt.replace("dog", "fox", 1)) == "fox"
    assert time.perf_counter() - started < 1.0


async def test_a_20k_word_prompt_is_aligned_in_seconds() -> None:
    """Item 12: the whole request, end to end, with a fake model (old: >100 s)."""
    words = ["alpha", "beta", "gamma", "delta", "the", "of", "and", "river"]
    prompt = " ".join(words[(i * 7) % len(words)] for i in range(20_000))
    model = AlignedChatModel(
        model=CountingChatModel(answer=instruction_following(0)), goal={"verbosity": 1}
    )
    await model.ainvoke("warm the scorers up")
    started = time.perf_counter()
    await model.ainvoke(prompt)
    assert time.perf_counter() - started < 3.0


def test_misspelled_settings_are_refused_by_name() -> None:
    """Item 14: per call and in the constructor, the same ConfigError."""
    model = AlignedChatModel(model=CountingChatModel(), goal={"verbosity": 1})
    with pytest.raises(ConfigError, match=r"unknown setting 'budjet'; did you mean 'budget'\?"):
        model.invoke("Hi", budjet=3)
    with pytest.raises(ConfigError, match=r"unknown setting 'serch'; did you mean 'search'\?"):
        AlignedChatModel(model=CountingChatModel(), goal={"verbosity": 1}, serch="beam")
    for bad in ({"budget": 1.5}, {"search": "bogus"}, {"reward": "bogus"}):
        with pytest.raises(ConfigError) as per_call:
            model.invoke("Hi", **bad)
        with pytest.raises(ConfigError) as built:
            AlignedChatModel(model=CountingChatModel(), goal={"verbosity": 1}, **bad)
        assert str(built.value) == str(per_call.value)
    model.invoke("Hi", temperature=0.5)  # not close to any setting: the model's own kwarg


async def test_a_budget_refusal_before_any_call_sends_nothing() -> None:
    model = CountingChatModel()
    pool = Budget(calls=0)
    aligned = AlignedChatModel(model=model, goal={"verbosity": 1}, shared_budget=pool)
    with pytest.raises(BudgetExceededError):
        await aligned.ainvoke("Hi")
    assert model.calls == 0


async def test_textstat_warms_up_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 10: the first scoring loads textstat's syllable dictionary, a blocking cost (about
    1 s with all of CMUdict, 0.2 s with the compact table); it must run on a worker thread,
    not on the event loop every concurrent request shares."""
    threads: list[threading.Thread] = []
    warm_up = ComplexityScorer.warm_up

    def spy(self: ComplexityScorer) -> None:
        threads.append(threading.current_thread())
        warm_up(self)

    monkeypatch.setattr(ComplexityScorer, "warm_up", spy)
    scorer = ComplexityScorer()
    await scorer.ascore("p", ["A plain sentence to grade for once."])
    await scorer.ascore("p", ["And a second one."])
    assert len(threads) == 1 and threads[0] is not threading.current_thread()


def test_a_model_that_retries_by_itself_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    """Item 2 ("nothing warns"): an opaque model with its own retries gets one warning."""

    class RetryingItself(CountingChatModel):
        max_retries: int = 2

    model = AlignedChatModel(model=RetryingItself(), goal={"verbosity": 1}, budget=2)
    with caplog.at_level("WARNING", logger="hia_chain"):
        model.invoke("Hi")
        model.invoke("Hi again")
    warned = [r.message for r in caplog.records if "retries failed calls itself" in r.message]
    assert len(warned) == 1 and "max_retries=0" in warned[0]


async def test_a_transport_that_reports_nothing_counts_from_the_start() -> None:
    """Item 3's safe side: a mock/ASGI transport delivers without tracing, so a request it
    took and then failed is charged, never given back; a reply is counted exactly once."""
    from langchain_openai import ChatOpenAI

    seen: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        if len(seen) == 1:
            raise httpx.ReadError("reset after reading the request", request=request)
        body = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
        }
        return httpx.Response(200, json=body)

    llm = ChatOpenAI(
        base_url="http://mock/v1",
        api_key="x",  # type: ignore[arg-type]
        model="m",
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(handler)),
    )
    pool = Budget(calls=5)
    model = AlignedChatModel(model=llm, goal={"verbosity": 1}, budget=2, shared_budget=pool)
    message = await model.ainvoke("Explain tides.", search="greedy")
    assert message.text == "ok"
    assert len(seen) == 2 == pool.usage().calls  # the SDK did not retry; the reset was charged


def test_a_garbled_retry_after_is_no_hint_not_a_crash() -> None:
    """A `Retry-After` that is neither seconds nor an HTTP date must not escape the call path
    (it used to raise ValueError before the reservation was settled, holding it forever)."""

    class Unavailable(Exception):
        status_code = 503
        headers = {"retry-after": "later"}  # noqa: RUF012

    assert retry_after(Unavailable()) is None
    assert is_transient(Unavailable())

"""Control flow of the HIA search with fake models: budgets, retries, cancellation, errors."""

from __future__ import annotations

import itertools

import anyio
import pytest

from hia_chain.budget import Budget
from hia_chain.errors import BudgetExceededError, ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.optimizer import LLMPromptOptimizer, TemplateOptimizer
from hia_chain.scorers.base import Heuristic, Prediction
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.search import HIASearch, Request, Response, SearchSettings
from tests.unit_tests.fakes import (
    CountingChatModel,
    FatalError,
    TransientError,
    WordCountScorer,
    instruction_following,
)

V = Objective("verbosity", description="0 = one sentence, 4 = very long")
GOAL = {"verbosity": 1.0}


def responder(model: CountingChatModel):
    async def respond(request: Request) -> Response:
        msg = await model.ainvoke(request.messages(), **request.model_kwargs())
        u = msg.usage_metadata
        return Response(msg.text, u and u["input_tokens"], u and u["output_tokens"], msg)

    return respond


def make_search(heuristic: Heuristic | None = None) -> HIASearch:
    return HIASearch(
        [V], [WordCountScorer()], TemplateOptimizer(), heuristic or InstructionHeuristic([V])
    )


COMBOS = list(
    itertools.product(
        ["bon", "greedy", "beam", "sample"], ["heuristic", "random", "order"], [1, 2, 3, 5]
    )
)


@pytest.mark.parametrize(("search", "filter_", "budget"), COMBOS)
async def test_budget_never_exceeded(search: str, filter_: str, budget: int) -> None:
    model = CountingChatModel(answer=instruction_following(0))
    settings = SearchSettings(search=search, filter=filter_, budget=budget, seed=1)
    result = await make_search().run("Explain how vaccines work.", GOAL, responder(model), settings)
    assert model.calls == result.calls == budget
    assert sum(c.attempts for c in result.candidates) == budget
    assert result.best.measured is not None and result.best.reward is not None
    assert result.best.reward == max(c.reward for c in result.candidates if c.reward is not None)


async def test_two_hundred_requests_share_one_pool() -> None:
    model = CountingChatModel(answer=instruction_following(1), latency=0.001)
    pool = Budget(calls=150)
    search = make_search()
    outcomes: list[str] = []

    async def one(i: int) -> None:
        settings = SearchSettings(search="beam", budget=2, seed=i)
        try:
            r = await search.run(
                f"Question {i}: why is the sky blue?", GOAL, responder(model), settings, shared=pool
            )
            outcomes.append("exhausted" if r.budget_exhausted else "ok")
        except BudgetExceededError:
            outcomes.append("refused")

    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(one, i)
    assert model.calls == pool.usage().calls <= 150
    assert len(outcomes) == 200 and "refused" in outcomes


async def test_cancel_mid_round_holds_nothing_and_counts_calls_in_flight() -> None:
    """Cancelling a request leaves no reservation held; calls the model already received
    count (the provider may bill them), so the pool is never overspent."""
    model = CountingChatModel(answer=instruction_following(2), latency=5)
    pool = Budget(calls=6)
    with anyio.move_on_after(0.2):
        await make_search().run(
            "Tell me about owls.", GOAL, responder(model), SearchSettings(budget=4), shared=pool
        )
    assert model.max_in_flight == 4 == pool.usage().calls  # all four had been sent
    assert pool.remaining_calls() == 2  # nothing left held by the cancelled request


async def test_transient_errors_are_retried_inside_the_budget() -> None:
    model = CountingChatModel(answer=instruction_following(3), fail_on={0: TransientError("reset")})
    settings = SearchSettings(search="bon", budget=3, max_retries=2)
    result = await make_search().run("Tell me about owls.", GOAL, responder(model), settings)
    assert model.calls == 3 == result.calls
    answered = [c for c in result.candidates if c.measured is not None]
    # one unit went to the failed attempt, so one candidate could not be retried within budget
    assert len(answered) == 2


async def test_retries_succeed_when_budget_allows() -> None:
    model = CountingChatModel(answer=instruction_following(3), fail_on={0: TransientError("reset")})
    settings = SearchSettings(search="greedy", budget=2, max_retries=2)
    result = await make_search().run("Tell me about owls.", GOAL, responder(model), settings)
    assert model.calls == 2
    assert [c.attempts for c in result.candidates if c.sent] == [2]


async def test_all_transient_failures_surface_the_error() -> None:
    model = CountingChatModel(fail_on={i: TransientError("down") for i in range(10)})
    with pytest.raises(TransientError):
        await make_search().run(
            "Hi there, tell me a fact.", GOAL, responder(model), SearchSettings(budget=2)
        )
    assert model.calls == 2


async def test_fatal_errors_surface_unchanged_without_retry() -> None:
    model = CountingChatModel(fail_on={0: FatalError("bad key")})
    with pytest.raises(FatalError, match="bad key"):
        await make_search().run(
            "Tell me about owls.", GOAL, responder(model), SearchSettings(search="greedy", budget=3)
        )
    assert model.calls == 1


async def test_budget_too_small_raises_before_any_work() -> None:
    model = CountingChatModel()
    pool = Budget(calls=0)
    with pytest.raises(BudgetExceededError, match="single response call"):
        await make_search().run(
            "Tell me about owls.", GOAL, responder(model), SearchSettings(budget=2), shared=pool
        )
    assert model.calls == 0


async def test_bad_inputs_raise_typed_errors() -> None:
    model = CountingChatModel()
    s = make_search()
    with pytest.raises(ConfigError, match="prompt is empty"):
        await s.run("  ", GOAL, responder(model), SearchSettings())
    with pytest.raises(ConfigError, match="unknown objective"):
        await s.run("Hi", {"tone": 1}, responder(model), SearchSettings())
    with pytest.raises(ConfigError, match="budget"):
        SearchSettings(budget=0)
    with pytest.raises(ConfigError, match="candidates_per_round"):
        SearchSettings(budget=4, candidates_per_round=2)
    with pytest.raises(ConfigError, match="No reference scorer"):
        HIASearch([V, Objective("tone")], [WordCountScorer()], TemplateOptimizer())
    assert model.calls == 0


class NaNHeuristic(Heuristic):
    async def apredict(self, original, candidates, objectives, context=None):
        return [Prediction({"verbosity": float("nan")}) for _ in candidates]


async def test_heuristic_nan_is_an_error() -> None:
    with pytest.raises(RewardModelError, match="nan"):
        await make_search(NaNHeuristic()).run(
            "Tell me about owls.", GOAL, responder(CountingChatModel()), SearchSettings()
        )


async def test_malformed_optimizer_output_still_yields_valid_candidates() -> None:
    messy = (
        "Sure! Here are some rewrites:\n1. Tell me about owls. Answer briefly.\n"
        "2) Tell me about owls in one short sentence.\n- Write a poem about cats\n"
        "Let me know if you need more!"
    )
    optimizer_llm = CountingChatModel(answer=lambda p, i: messy)
    search = HIASearch(
        [V], [WordCountScorer()], LLMPromptOptimizer(optimizer_llm), InstructionHeuristic([V])
    )
    model = CountingChatModel(answer=instruction_following(4))
    result = await search.run(
        "Tell me about owls.",
        GOAL,
        responder(model),
        SearchSettings(budget=2, candidates_per_round=5),
    )
    prompts = {c.prompt: c for c in result.candidates}
    assert "Tell me about owls. Answer briefly." in prompts
    assert prompts["Write a poem about cats"].rejected == "drops the user's request"
    assert all(c.rejected is None for c in result.candidates if c.sent)
    assert model.calls == 2


def test_plan_reports_upper_bounds() -> None:
    optimizer_llm = CountingChatModel()
    search = HIASearch(
        [V],
        [WordCountScorer()],
        LLMPromptOptimizer(optimizer_llm, max_retries=1),
        InstructionHeuristic([V]),
    )
    plan = search.plan(SearchSettings(search="greedy", budget=3, max_tokens=50, max_retries=0))
    assert plan.response_calls == 3 and plan.response_tokens == 3 * 114
    # 3 rounds x 1 seed x (1 call + 1 retry of the optimizer's own)
    assert plan.rounds == 3 and plan.optimizer_calls == 6 and plan.draft_calls == 0
    beam = search.plan(SearchSettings(search="beam", beam_width=2, budget=4, max_retries=0))
    # one request in the first round, then one per beam in each later round, x 2 attempts
    assert beam.optimizer_calls == (1 + 3 * 2) * 2
    assert optimizer_llm.calls == 0

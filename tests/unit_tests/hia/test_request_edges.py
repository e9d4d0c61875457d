"""Edges of a request that budgets and users hit: whole conversations, bounds, images,
custom scales, side-role caps, a pool running dry, long prompts, empty goals.

Why: each of these once overspent a budget, dropped input silently or threw away answers
already paid for; the tests pin the behaviour users are promised in the README.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from hia_chain.aligned import AlignedChatModel
from hia_chain.budget import Budget, Limits
from hia_chain.errors import BudgetExceededError, ConfigError
from hia_chain.goals import Objective
from hia_chain.optimizer import LLMPromptOptimizer, TemplateOptimizer
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.text import VerbosityScorer
from hia_chain.search import HIASearch, Request, Response, SearchSettings, StopReason
from hia_chain.search.stage1 import near_duplicate
from tests.unit_tests.fakes import CountingChatModel, WordCountScorer, instruction_following

V = Objective("verbosity")


def aligned(model: CountingChatModel, **kw: object) -> AlignedChatModel:
    kw.setdefault("goal", {"verbosity": 1})
    return AlignedChatModel(
        model=model,
        objectives=[V],
        scorers=[WordCountScorer()],
        heuristic=InstructionHeuristic([V]),
        **kw,
    )


async def test_token_bounds_cover_the_whole_conversation() -> None:
    """A long system prompt is sent with every candidate: the token cap must count it."""
    model = CountingChatModel(answer=instruction_following(0))
    pool = Budget(calls=10, tokens=2000)
    llm = aligned(model, budget=4, max_tokens=50, shared_budget=pool)
    system = SystemMessage(" ".join(["context"] * 400))  # ~3200 characters
    with pytest.raises(BudgetExceededError, match="single response call"):
        await llm.ainvoke([system, HumanMessage("Tell me about owls.")])
    assert model.calls == 0


async def test_max_tokens_reaches_the_response_model() -> None:
    model = CountingChatModel(answer=instruction_following(1))
    await aligned(model, budget=2, max_tokens=40).ainvoke("Tell me about owls.")
    assert [kw.get("max_tokens") for kw in model.call_kwargs] == [40, 40]


async def test_images_and_other_blocks_are_kept_in_every_candidate() -> None:
    model = CountingChatModel(answer=instruction_following(2))
    image = {"type": "image", "url": "https://example.invalid/owl.png"}
    message = HumanMessage(content=[{"type": "text", "text": "What bird is this?"}, image])
    await aligned(model, budget=2).ainvoke([message])
    for sent in model.messages_seen:
        blocks = sent[-1].content
        assert image in blocks and sent[-1].text.startswith("What bird is this?")


def test_builtin_scorers_follow_a_custom_scale() -> None:
    ten = Objective("verbosity", high=10)
    llm = AlignedChatModel(model=CountingChatModel(), objectives=[ten], goal={"verbosity": 9})
    (scorer,) = llm.scorers or []
    assert isinstance(scorer, VerbosityScorer) and scorer.high == 10


async def test_an_optimizer_cap_returns_the_best_answer_so_far() -> None:
    rewriter = CountingChatModel(answer=lambda p, i: "1. Tell me about owls. Answer briefly.")
    model = CountingChatModel(answer=instruction_following(3))
    search = HIASearch([V], [WordCountScorer()], LLMPromptOptimizer(rewriter, max_retries=0))
    pool = Budget(limits={"optimizer": Limits(calls=1)})
    settings = SearchSettings(search="greedy", filter="order", budget=3, max_retries=0)

    async def respond(request: Request) -> Response:
        msg = await model.ainvoke(request.messages())
        return Response(msg.text, message=msg)

    result = await search.run(
        "Tell me about owls.", {"verbosity": 1}, respond, settings, shared=pool
    )
    # round 0 pays the optimizer; in round 1 it is refused, so that round re-samples the best
    # prompt so far, and the search stops there instead of failing
    assert rewriter.calls == 1 and model.calls == 2 and result.best.measured is not None
    assert result.budget_exhausted and result.stopped is StopReason.REFUSED
    assert "optimizer" in (result.stop_detail or "")
    trace = result.trace()  # the trace shows the reason and the refusal
    assert (trace["stopped"], trace["stop_detail"]) == ("refused", result.stop_detail)
    # with no optimizer call affordable at all, the original prompt is still answered
    model = CountingChatModel(answer=instruction_following(3))
    none = Budget(limits={"optimizer": Limits(calls=0)})
    result = await search.run(
        "Tell me about owls.", {"verbosity": 1}, respond, settings, shared=none
    )
    assert model.calls == 1 and result.best.origin == "original" and result.budget_exhausted


async def test_a_pool_running_dry_between_rounds_is_reported() -> None:
    model = CountingChatModel(answer=instruction_following(4))
    pool = Budget(calls=1)
    msg = await aligned(model, budget=3, search="greedy", shared_budget=pool).ainvoke(
        "Tell me about owls."
    )
    trace = msg.response_metadata["hia"]
    assert trace["calls"] == 1 == model.calls
    assert trace["budget_exhausted"] and trace["stopped"] == "budget exhausted"


async def test_rewrites_of_a_long_prompt_are_not_duplicates_of_it() -> None:
    prompt = "Summarise the following report. " + " ".join(f"fact{i}" for i in range(200))
    model = CountingChatModel(answer=instruction_following(5))
    search = HIASearch([V], [WordCountScorer()], TemplateOptimizer(), InstructionHeuristic([V]))
    settings = SearchSettings(search="bon", budget=4)

    async def respond(request: Request) -> Response:
        msg = await model.ainvoke(request.messages())
        return Response(msg.text, message=msg)

    result = await search.run(prompt, {"verbosity": 1}, respond, settings)
    sent = {c.text for c in result.candidates if c.sent}
    assert len(sent) == 4 and result.rounds == 1
    assert near_duplicate(prompt, prompt + " Be brief.", prompt + " Be brief!")
    assert not near_duplicate(
        prompt, prompt + " Be concise, not verbose.", prompt + " Be verbose, not concise."
    )


async def test_an_empty_per_call_goal_is_an_error_not_the_default() -> None:
    llm = aligned(CountingChatModel(), budget=1)
    with pytest.raises(ConfigError, match="goal"):
        await llm.ainvoke("Tell me about owls.", goal={})


@pytest.mark.parametrize(
    "bad",
    [
        {"exploration": float("nan")},
        {"max_retries": 1.5},
        {"max_retries": "2"},
        {"candidates_per_round": 2.5},
        {"max_tokens": -5},
        {"budget": True},
    ],
)
def test_bad_settings_are_refused_by_name(bad: dict[str, object]) -> None:
    (name,) = bad
    with pytest.raises(ConfigError, match=name):
        SearchSettings(**bad)  # type: ignore[arg-type]


def test_sync_calls_keep_async_only_user_runnables_async() -> None:
    """Sync entry points use language models' sync API, not that of a user's async function."""
    from langchain_core.runnables import RunnableLambda

    from hia_chain.scorers import FunctionScorer

    async def words(inputs: dict[str, str]) -> dict[str, float]:
        return {"verbosity": min(4.0, len(inputs["response"].split()) / 25)}

    llm = AlignedChatModel(
        model=CountingChatModel(answer=instruction_following(6)),
        objectives=[V],
        scorers=[FunctionScorer(RunnableLambda(words), ["verbosity"])],
        heuristic=InstructionHeuristic([V]),
        goal={"verbosity": 1},
        budget=2,
    )
    assert llm.invoke("Tell me about owls.").response_metadata["hia"]["calls"] == 2


async def test_a_judge_cap_keeps_the_answers_it_did_grade() -> None:
    from langchain_core.language_models import FakeListChatModel

    from hia_chain.scorers import LLMJudgeScorer

    judge = LLMJudgeScorer(FakeListChatModel(responses=['{"verbosity": 2}'] * 4), [V], retries=0)
    model = CountingChatModel(answer=instruction_following(7))
    llm = AlignedChatModel(
        model=model,
        objectives=[V],
        scorers=[judge],
        heuristic=InstructionHeuristic([V]),
        goal={"verbosity": 2},
        budget=2,
        shared_budget=Budget(limits={"judge": Limits(calls=1)}),
    )
    trace = (await llm.ainvoke("Tell me about owls.")).response_metadata["hia"]
    assert trace["calls"] == 2 == model.calls and trace["usage"]["judge"]["calls"] == 1
    assert sum(c["measured"] is not None for c in trace["candidates"]) == 1
    assert trace["budget_exhausted"] and "judge" in trace["stop_detail"]


def test_fixed_input_counts_tool_calls_images_and_every_binding() -> None:
    from langchain_core.messages import AIMessage

    from hia_chain._messages import fixed_chars

    call = {"name": "lookup", "args": {"q": "x" * 5000}, "id": "1", "type": "tool_call"}
    image = {"type": "image", "url": "https://example.invalid/a.png"}
    messages = [
        AIMessage(content="", tool_calls=[call]),
        HumanMessage(content=[{"type": "text", "text": "What is this?"}, image]),
    ]
    bound = CountingChatModel().bind(tools=["t" * 300]).bind(stop=["END"])
    chars = fixed_chars(bound, messages, 1)
    assert chars >= 5000 + 2048 + 300

"""Draft heuristic: drafts follow the candidate, are scored against the original, are
budgeted per draft, flag truncation, and degrade honestly when the draft budget runs out."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManager

from hia_chain.budget import Budget, Limits
from hia_chain.context import RunContext
from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers.draft import DraftHeuristic, is_truncated
from hia_chain.scorers.function import FunctionScorer
from hia_chain.scorers.text import VerbosityScorer
from hia_chain.testing import FakeChatModel
from tests.unit_tests.fakes import ChatStartRecorder

ORIGINAL = "Explain how vaccines work."
BRIEF = ORIGINAL + " Answer briefly."
DETAIL = ORIGINAL + " Explain in detail."


def answer(prompt: str, index: int) -> str:
    if "briefly" in prompt:
        return " ".join(["short"] * 12)
    if "detail" in prompt:
        return " ".join(["long"] * 400)
    return " ".join(["plain"] * 40)


def drafter(**kw: Any) -> FakeChatModel:
    return FakeChatModel(answer=answer, truncate=True, **kw)


async def test_drafts_follow_the_candidate_and_rank_verbosity() -> None:
    model = drafter()
    heuristic = DraftHeuristic(model, [VerbosityScorer()], max_tokens=64)
    preds = await heuristic.apredict(ORIGINAL, [ORIGINAL, BRIEF, DETAIL], ["verbosity"])
    v = [p.scores["verbosity"] for p in preds]
    assert v[1] < v[0] < v[2]
    assert sorted(model.prompts) == sorted(
        [ORIGINAL, BRIEF, DETAIL]
    )  # nothing added to make drafts short
    assert all(kw.get("max_tokens") == 64 for kw in model.call_kwargs)


async def test_drafts_are_scored_against_the_original_prompt() -> None:
    seen: list[str] = []

    def spy(prompt: str, response: str) -> dict[str, float]:
        seen.append(prompt)
        return {"x": 1.0}

    await DraftHeuristic(drafter(), [FunctionScorer(spy, ["x"])]).apredict(
        ORIGINAL, [BRIEF, DETAIL], ["x"]
    )
    assert seen == [ORIGINAL, ORIGINAL]


async def test_truncated_drafts_get_higher_uncertainty() -> None:
    heuristic = DraftHeuristic(drafter(), [VerbosityScorer()], max_tokens=64, draft_std=0.125)
    brief, detail = await heuristic.apredict(ORIGINAL, [BRIEF, DETAIL], ["verbosity"])
    assert brief.uncertainty == {"verbosity": 0.5}
    assert detail.uncertainty == {"verbosity": 1.0}  # cut at 64: verbosity is a lower bound


def test_is_truncated_reads_provider_spellings_and_usage() -> None:
    from langchain_core.messages import AIMessage

    assert is_truncated(AIMessage("x", response_metadata={"finish_reason": "length"}), None)
    assert is_truncated(AIMessage("x", response_metadata={"stop_reason": "max_tokens"}), None)
    assert is_truncated(AIMessage("x", response_metadata={"done_reason": "length"}), None)
    usage = {"input_tokens": 3, "output_tokens": 64, "total_tokens": 67}
    assert is_truncated(AIMessage("x", usage_metadata=usage), 64)
    assert not is_truncated(AIMessage("x", usage_metadata=usage), 65)
    assert not is_truncated(AIMessage("x", response_metadata={"finish_reason": "stop"}), 64)


async def test_each_draft_is_budgeted_and_settled_with_usage() -> None:
    budget = Budget(calls=1)
    model = drafter()
    await DraftHeuristic(model, [VerbosityScorer()]).apredict(
        ORIGINAL, [ORIGINAL, BRIEF], ["verbosity"], RunContext(budget)
    )
    used = budget.usage("draft")
    assert used.calls == 2
    assert used.output_tokens == 40 + 12
    assert used.unreported == 0
    assert budget.usage("response").calls == 0


async def test_duplicate_candidates_are_drafted_once() -> None:
    model = drafter()
    budget = Budget()
    preds = await DraftHeuristic(model, [VerbosityScorer()]).apredict(
        ORIGINAL, [BRIEF, BRIEF, ORIGINAL], ["verbosity"], RunContext(budget)
    )
    assert len(model.prompts) == 2 and budget.usage("draft").calls == 2
    assert preds[0] == preds[1]


async def test_draft_cap_drafts_what_fits_and_guesses_the_rest() -> None:
    budget = Budget(limits={"draft": Limits(calls=2)})
    model = drafter()
    heuristic = DraftHeuristic(
        model, [VerbosityScorer()], objectives=[Objective("verbosity", low=0, high=4)]
    )
    preds = await heuristic.apredict(
        ORIGINAL, [ORIGINAL, BRIEF, DETAIL], ["verbosity"], RunContext(budget)
    )
    assert sorted(model.prompts) == sorted([ORIGINAL, BRIEF])  # the first ones, in order
    assert budget.usage("draft").calls == 2
    drafted = [p.scores["verbosity"] for p in preds[:2]]
    assert preds[2].scores["verbosity"] == pytest.approx(sum(drafted) / 2)
    assert preds[2].uncertainty == {"verbosity": 2.0}
    assert all(p.uncertainty["verbosity"] < 2.0 for p in preds[:2])


async def test_no_draft_budget_gives_midpoints_without_calling() -> None:
    budget = Budget(limits={"draft": Limits(calls=0)})
    model = drafter()
    objectives = [Objective("x", low=0, high=10)]
    scorer = FunctionScorer(lambda p, r: {"x": 1.0}, objectives)
    preds = await DraftHeuristic(model, [scorer], objectives=objectives).apredict(
        ORIGINAL, [BRIEF, DETAIL], ["x"], RunContext(budget)
    )
    assert model.prompts == []
    assert [p.scores for p in preds] == [{"x": 5.0}, {"x": 5.0}]
    assert preds[0].uncertainty == {"x": 5.0}


async def test_unknown_objective_fails_before_spending() -> None:
    budget = Budget()
    model = drafter()
    with pytest.raises(ConfigError, match="'sentiment'"):
        await DraftHeuristic(model, [VerbosityScorer()]).apredict(
            ORIGINAL, [BRIEF], ["verbosity", "sentiment"], RunContext(budget)
        )
    assert model.prompts == [] and budget.usage("draft").calls == 0


async def test_drafter_failure_is_raised_and_counted() -> None:
    budget = Budget()

    def answer(prompt: str, index: int) -> str:
        if "detail" in prompt:
            raise RuntimeError("scripted failure")
        return "fine"

    model = FakeChatModel(answer=answer)
    with pytest.raises(RuntimeError, match="scripted failure"):
        await DraftHeuristic(model, [VerbosityScorer()]).apredict(
            ORIGINAL, [BRIEF, DETAIL], ["verbosity"], RunContext(budget)
        )
    used = budget.usage("draft")
    assert used.calls == 2 and used.unreported == 1


async def test_bad_scorer_output_is_a_reward_model_error() -> None:
    scorer = FunctionScorer(lambda p, r: {"x": float("nan")}, ["x"])
    with pytest.raises(RewardModelError, match="'x'"):
        await DraftHeuristic(drafter(), [scorer]).apredict(ORIGINAL, [BRIEF], ["x"])


async def test_drafts_are_child_runs_tagged_draft_under_a_token_cap() -> None:
    budget = Budget(limits={"draft": Limits(tokens=10_000)})
    model = drafter()
    recorder = ChatStartRecorder()
    run = await AsyncCallbackManager.configure(inheritable_callbacks=[recorder]).on_chain_start(
        {"name": "aligned"}, {}
    )
    context = RunContext(budget, run_manager=run)
    await DraftHeuristic(model, [VerbosityScorer()], max_tokens=32).apredict(
        ORIGINAL, [BRIEF, DETAIL], ["verbosity"], context
    )
    assert budget.usage("draft").calls == 2
    assert [(("hia:draft" in tags), parent) for tags, parent in recorder.chat_starts] == [
        (True, run.run_id)
    ] * 2
    with pytest.raises(ConfigError, match="max_tokens"):
        await DraftHeuristic(model, [VerbosityScorer()], max_tokens=None).apredict(
            ORIGINAL, [BRIEF], ["verbosity"], RunContext(budget)
        )


async def test_empty_candidates_and_constructor_checks() -> None:
    assert (
        await DraftHeuristic(drafter(), [VerbosityScorer()]).apredict(ORIGINAL, [], ["verbosity"])
        == []
    )
    with pytest.raises(ConfigError, match="scorers"):
        DraftHeuristic(drafter(), [])
    with pytest.raises(ConfigError, match="max_tokens"):
        DraftHeuristic(drafter(), [VerbosityScorer()], max_tokens=0)
    with pytest.raises(ConfigError, match="draft_std"):
        DraftHeuristic(drafter(), [VerbosityScorer()], draft_std=0)
    assert DraftHeuristic(drafter(), [VerbosityScorer()]).model_calls_per_item == 1

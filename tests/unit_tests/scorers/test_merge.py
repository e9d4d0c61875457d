"""Merging several scorers' scores: the first scorer of an objective wins, a scorer with
nothing to add is not called, and a scorer's budget running out leaves the rows it could
not grade unmeasured instead of failing the batch."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, RewardModelError
from hia_chain.scorers.base import ReferenceScorer, score_responses


class Fixed(ReferenceScorer):
    """Scores every response with ``scores``; records its calls; may run out of budget."""

    def __init__(self, scores: dict[str, float], *, graded: int | None = None) -> None:
        self.objectives = tuple(scores)
        self.scores = scores
        self.graded = graded
        self.calls = 0

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        self.calls += 1
        rows = [dict(self.scores) for _ in responses]
        if self.graded is not None:
            partial = [r if i < self.graded else None for i, r in enumerate(rows)]
            raise BudgetExceededError("The 'judge' budget ran out.", partial=partial)
        return rows


async def test_each_objective_comes_from_the_first_scorer_that_produces_it() -> None:
    text, judge, extra = (
        Fixed({"verbosity": 1.0}),
        Fixed({"verbosity": 3.0, "helpfulness": 2.0}),
        Fixed({"verbosity": 4.0}),
    )
    merged = await score_responses([text, judge, extra], "p", ["a", "b"])
    assert merged.rows == [{"verbosity": 1.0, "helpfulness": 2.0}] * 2 and merged.stopped is None
    assert (text.calls, judge.calls, extra.calls) == (1, 1, 0)  # extra had nothing to add


async def test_only_the_wanted_objectives_are_scored() -> None:
    text, judge = Fixed({"verbosity": 1.0}), Fixed({"helpfulness": 2.0})
    merged = await score_responses([text, judge], "p", ["a"], objectives=["verbosity"])
    assert merged.rows == [{"verbosity": 1.0}] and judge.calls == 0


async def test_a_budget_stop_leaves_ungraded_rows_unmeasured_and_the_rest_still_run() -> None:
    judge, text = Fixed({"helpfulness": 2.0}, graded=1), Fixed({"verbosity": 1.0})
    merged = await score_responses([judge, text], "p", ["a", "b", "c"])
    assert merged.rows == [{"helpfulness": 2.0, "verbosity": 1.0}, None, None]
    assert merged.stopped is not None and "judge" in merged.stopped and text.calls == 1


async def test_no_responses_calls_no_scorer() -> None:
    scorer = Fixed({"verbosity": 1.0})
    assert (await score_responses([scorer], "p", [])).rows == [] and scorer.calls == 0


async def test_a_bad_score_is_a_reward_model_error_naming_the_scorer() -> None:
    with pytest.raises(RewardModelError, match="Fixed"):
        await score_responses([Fixed({"verbosity": float("nan")})], "p", ["a"])

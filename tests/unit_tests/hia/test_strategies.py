"""One home per idea: the strategy each search kind follows, and one source for settings.

The dry run (:meth:`HIASearch.plan`) and the search (:meth:`HIASearch.run`) read the same
strategy, so what a plan says a round costs is what a round spends; the model's fields, the
setting names and the defaults all come from :class:`SearchSettings`.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import random
import re
from collections.abc import Sequence
from typing import Any, get_args

import pytest

from hia_chain import aligned as aligned_module
from hia_chain.aligned import AlignedChatModel
from hia_chain.context import RunContext
from hia_chain.goals import REWARD_NAMES, Objective, RewardName
from hia_chain.instructions import added_text
from hia_chain.optimizer.base import OptimizeRequest, PromptOptimizer, Proposal
from hia_chain.scorers.base import Prediction
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.search import (
    FILTERS,
    SEARCHES,
    SETTING_NAMES,
    HIASearch,
    Request,
    Response,
    SearchSettings,
    StopReason,
)
from hia_chain.search.stage1 import validate
from hia_chain.search.strategies import STRATEGIES
from hia_chain.search.types import Candidate, FilterName, SearchName
from tests.unit_tests.fakes import CountingChatModel, WordCountScorer, instruction_following

V = Objective("verbosity", description="0 = one sentence, 4 = very long")


class CountingOptimizer(PromptOptimizer):
    """Always N new, distinct rewrites, declared as one model call per request, and counted."""

    model_calls_per_round = 1

    def __init__(self) -> None:
        self.calls = 0
        self.made = 0

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        self.calls += 1
        out = []
        for _ in range(request.n):
            self.made += 1
            text = f"{request.prompt} Answer in {self.made} words, style {self.made * 7919}."
            out.append(Proposal(text, "counting"))
        return out


class CountingHeuristic(InstructionHeuristic):
    """Instruction cues, declared as one drafted call per candidate, and counted."""

    model_calls_per_item = 1

    def __init__(self) -> None:
        super().__init__([V])
        self.items = 0

    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        self.items += len(candidates)
        return await super().apredict(original, candidates, objectives, context)


class CountingJudge(WordCountScorer):
    """Word counts, declared as one judge call per answer, and counted."""

    model_calls_per_item = 1

    def __init__(self) -> None:
        self.items = 0

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        self.items += len(responses)
        return await super().ascore(prompt, responses, context)


@pytest.mark.parametrize("search", SEARCHES)
async def test_plan_is_what_run_spends(search: SearchName) -> None:
    optimizer, heuristic, judge = CountingOptimizer(), CountingHeuristic(), CountingJudge()
    engine = HIASearch([V], [judge], optimizer, heuristic)
    model = CountingChatModel(answer=instruction_following(0))

    async def respond(request: Request) -> Response:
        return Response.from_message(await model.ainvoke(request.messages()))

    settings = SearchSettings(search=search, budget=4, beam_width=2, seed=3, max_tokens=64)
    plan = engine.plan(settings)
    result = await engine.run("Explain how tides work.", {"verbosity": 1}, respond, settings)

    assert plan.response_calls == result.calls == model.calls == settings.budget
    assert plan.judge_calls == judge.items == settings.budget
    assert result.stopped is StopReason.BUDGET_SPENT
    # The plan allows for the most rounds a request can take (one call each); priced for the
    # rounds the run took, it is what the run spent.
    assert result.rounds == settings.rounds <= plan.rounds
    took = engine.plan(settings, rounds=result.rounds)
    assert took.optimizer_calls == optimizer.calls <= plan.optimizer_calls
    assert took.draft_calls == heuristic.items <= plan.draft_calls
    assert took.judge_calls == judge.items and took.response_calls == result.calls
    if search in ("greedy", "sample"):  # the most rounds is the usual number
        assert plan == took


def test_search_kinds_are_named_once() -> None:
    assert tuple(STRATEGIES) == SEARCHES == get_args(SearchName)
    assert FILTERS == get_args(FilterName)
    assert REWARD_NAMES == get_args(RewardName)


def test_trace_keeps_the_stop_reasons_it_always_had() -> None:
    assert {r.value for r in StopReason} == {
        "budget spent",
        "budget exhausted",
        "refused",
        "deadline",
        "no new candidates",
        "model error",
        "tool call",
        "passed",
    }
    assert f"{StopReason.DEADLINE}" == "deadline"


def test_model_fields_take_their_defaults_from_search_settings() -> None:
    fields = AlignedChatModel.model_fields
    assert SETTING_NAMES == tuple(f.name for f in dataclasses.fields(SearchSettings))
    for f in dataclasses.fields(SearchSettings):
        assert f.name in fields, f"AlignedChatModel lacks the setting {f.name!r}"
        assert fields[f.name].default == f.default, f.name
    model = AlignedChatModel(model=CountingChatModel(), goal={"verbosity": 1})
    defaults = SearchSettings()
    assert model._settings({}) == defaults


def test_every_model_field_has_a_docstring() -> None:
    tree = ast.parse(inspect.getsource(aligned_module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "AlignedChatModel")
    body = cls.body
    missing = [
        node.target.id
        for node, after in zip(body, [*body[1:], None], strict=True)
        if isinstance(node, ast.AnnAssign)
        and isinstance(node.target, ast.Name)
        and not node.target.id.startswith("_")
        and node.target.id != "model_config"
        and not (
            isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        )
    ]
    assert not missing, f"fields without a docstring: {missing}"
    assert {n for n in AlignedChatModel.model_fields if not n.startswith("_")} >= set(SETTING_NAMES)


def _near_duplicate_reference(original: str, a: str, b: str) -> bool:
    """The pairwise definition stage 1 had before it compared each candidate's change once."""

    def words(text: str) -> list[str]:
        return re.findall(r"\w+", text.lower())

    wa, wb = words(added_text(original, a)), words(added_text(original, b))
    if not wa or not wb:
        return wa == wb and words(a) == words(b)
    return difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).ratio() >= 0.95


def test_validate_rejects_exactly_the_pairwise_near_duplicates() -> None:
    original = "Explain how tides work."
    rng = random.Random(0)
    tails = [
        "Answer briefly.",
        "Answer briefly!",
        "Answer in one short sentence.",
        "answer in one short sentence",
        "Keep the answer short: a few sentences.",
        "Explain in detail.",
        "Explain in great detail, with examples.",
        "",
    ]
    prompts = [f"{original} {rng.choice(tails)} {rng.choice(tails)}".strip() for _ in range(40)]
    fresh = [Candidate(id=i, prompt=p, origin="resample", round=0) for i, p in enumerate(prompts)]
    validate(original, fresh, [])
    kept: list[str] = []
    expected: list[Any] = []
    for p in prompts:
        if any(_near_duplicate_reference(original, p, k) for k in kept):
            expected.append("near-duplicate of an earlier candidate")
        else:
            expected.append(None)
            kept.append(p)
    assert [c.rejected for c in fresh] == expected
    assert None in expected and "near-duplicate of an earlier candidate" in expected

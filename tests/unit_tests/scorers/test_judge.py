"""LLM judge: lenient parsing, corrective retry, typed errors, budget and tracing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage

from hia_chain.budget import Budget, Limits
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers._parse import parse_scores
from hia_chain.scorers.judge import HELPSTEER_RUBRICS, LLMJudgeScorer
from hia_chain.testing import FakeChatModel
from tests.unit_tests.fakes import ChatStartRecorder

HS = ("helpfulness", "correctness", "coherence", "complexity", "verbosity")
HS_OBJECTIVES = [Objective(n) for n in HS]
HELPSTEER_SAMPLE = (
    Path(__file__).resolve().parents[3].parent / "shared" / "data" / "helpsteer2_sample.jsonl"
)


def judge(
    replies: list[str], objectives: list[Objective] | None = None, **kw: Any
) -> LLMJudgeScorer:
    return LLMJudgeScorer(
        FakeListChatModel(responses=replies), objectives or [Objective("helpfulness")], **kw
    )


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ('{"helpfulness": 3, "verbosity": 1}', {"helpfulness": 3, "verbosity": 1}),
        (
            'Here you go:\n```json\n{"Helpfulness": 2.5, "VERBOSITY": "1"}\n```\nHope it helps!',
            {"helpfulness": 2.5, "verbosity": 1},
        ),
        (
            '{"scores": {"helpfulness": {"score": 4}, "verbosity": "2/4"}}',
            {"helpfulness": 4, "verbosity": 2},
        ),
        ("**Helpfulness**: 3/4\n**Verbosity** (0-4): 0", {"helpfulness": 3, "verbosity": 0}),
        ("helpfulness = 1\nverbosity score: 4", {"helpfulness": 1, "verbosity": 4}),
        ('{"helpfulness": 2}\nverbosity: 3', {"helpfulness": 2, "verbosity": 3}),
        ("- Helpfulness - 2\n- Verbosity: 1.5 (a bit short)", {"helpfulness": 2, "verbosity": 1.5}),
    ],
)
async def test_messy_replies_parse(reply: str, expected: dict[str, float]) -> None:
    objectives = [Objective("helpfulness"), Objective("verbosity")]
    out = await judge([reply], objectives).ascore("p", ["r"])
    assert out == [{k: float(v) for k, v in expected.items()}]


@pytest.mark.parametrize(
    "reply",
    [
        '{"helpfulness": NaN}',
        '{"helpfulness": true}',
        "helpfulness: high",
        '{"helpfulness": Infinity}',
        "I think it is fine.",
    ],
)
def test_parse_rejects_non_numbers(reply: str) -> None:
    assert parse_scores(reply, ["helpfulness"]) == {}


async def test_scores_are_clamped_to_the_scale() -> None:
    objectives = [Objective("helpfulness"), Objective("verbosity")]
    out = await judge(['{"helpfulness": 7, "verbosity": -2}'], objectives).ascore("p", ["r"])
    assert out == [{"helpfulness": 4.0, "verbosity": 0.0}]


async def test_helpsteer_grade_maps_onto_a_custom_scale_and_others_use_their_own() -> None:
    objectives = [
        Objective("helpfulness", low=0, high=1),
        Objective("formality", "How formal", low=1, high=10),
    ]
    scorer = judge(['{"helpfulness": 3, "formality": 7}'], objectives)
    text = scorer.messages("p", "r")[1].text
    assert "helpfulness (number from 0 to 4)" in text
    assert "formality (number from 1 to 10): How formal" in text
    assert await scorer.ascore("p", ["r"]) == [{"helpfulness": 0.75, "formality": 7.0}]


def test_prompt_carries_the_rubric_for_every_helpsteer_attribute() -> None:
    text = LLMJudgeScorer(FakeListChatModel(responses=["x"]), HS_OBJECTIVES).messages("P?", "R.")
    body = text[1].text
    for name in HS:
        assert HELPSTEER_RUBRICS[name] in body
    assert "[PROMPT]\nP?\n[/PROMPT]" in body and "[RESPONSE]\nR.\n[/RESPONSE]" in body
    assert "JSON" in text[0].text


async def test_missing_score_gets_one_corrective_retry() -> None:
    model = FakeChatModel(
        answer=lambda p, i: "helpfulness: 3" if "could not read" in p else "Looks good to me."
    )
    out = await LLMJudgeScorer(model, [Objective("helpfulness")]).ascore("p", ["r"])
    assert out == [{"helpfulness": 3.0}]
    assert len(model.prompts) == 2
    assert "helpfulness" in model.prompts[1]


@pytest.mark.parametrize("reply", ['{"helpfulness": NaN}', "no numbers here at all"])
async def test_unreadable_twice_raises_naming_objective_and_snippet(reply: str) -> None:
    scorer = judge([reply, reply])
    with pytest.raises(RewardModelError) as info:
        await scorer.ascore("p", ["r"])
    assert "'helpfulness'" in str(info.value)
    assert reply[:10] in str(info.value)


async def test_retry_keeps_scores_already_read() -> None:
    objectives = [Objective("helpfulness"), Objective("verbosity")]
    out = await judge(['{"helpfulness": 1}', '{"verbosity": 2}'], objectives).ascore("p", ["r"])
    assert out == [{"helpfulness": 1.0, "verbosity": 2.0}]


async def test_retries_zero_raises_on_first_failure() -> None:
    with pytest.raises(RewardModelError, match="after 1 judge call"):
        await judge(["nothing"], retries=0).ascore("p", ["r"])


def usage_reply(text: str, i: int = 10, o: int = 3) -> AIMessage:
    return AIMessage(
        text, usage_metadata={"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
    )


async def test_budget_counts_judge_calls_and_tokens() -> None:
    model = GenericFakeChatModel(
        messages=iter([usage_reply('{"helpfulness": 2}'), usage_reply("helpfulness: 4", 7, 2)])
    )
    budget = Budget(calls=1)
    out = await LLMJudgeScorer(model, [Objective("helpfulness")], max_concurrency=1).ascore(
        "p", ["a", "b"], RunContext(budget)
    )
    assert sorted(o["helpfulness"] for o in out) == [2.0, 4.0]
    used = budget.usage("judge")
    assert (used.calls, used.input_tokens, used.output_tokens, used.unreported) == (2, 17, 5, 0)
    assert budget.usage("response").calls == 0


async def test_reply_without_usage_is_counted_as_unreported() -> None:
    budget = Budget()
    await judge(["helpfulness: 2"]).ascore("p", ["r"], RunContext(budget))
    used = budget.usage("judge")
    assert (used.calls, used.total_tokens, used.unreported) == (1, 0, 1)


async def test_judge_cap_is_enforced() -> None:
    budget = Budget(limits={"judge": Limits(calls=1)})
    with pytest.raises(BudgetExceededError, match="judge"):
        await judge(["helpfulness: 2", "helpfulness: 3"], max_concurrency=1).ascore(
            "p", ["a", "b"], RunContext(budget)
        )
    assert budget.usage("judge").calls == 1


async def test_token_cap_needs_a_bound_and_uses_max_tokens() -> None:
    budget = Budget(limits={"judge": Limits(tokens=100_000)})
    with pytest.raises(ConfigError, match="max_tokens"):
        await judge(["helpfulness: 2"]).ascore("p", ["r"], RunContext(budget))
    await judge(["helpfulness: 2"], max_tokens=50).ascore("p", ["r"], RunContext(budget))
    assert budget.usage("judge").calls == 1


async def test_concurrency_is_bounded() -> None:
    model = FakeChatModel(answer=lambda p, i: "helpfulness: 2", latency=0.02)
    out = await LLMJudgeScorer(model, [Objective("helpfulness")], max_concurrency=3).ascore(
        "p", ["r"] * 10
    )
    assert len(out) == 10
    assert model.max_in_flight == 3


async def test_judge_calls_are_child_runs_tagged_judge() -> None:
    recorder = ChatStartRecorder()
    manager = AsyncCallbackManager.configure(inheritable_callbacks=[recorder])
    run = await manager.on_chain_start({"name": "aligned"}, {})
    await judge(["helpfulness: 1"]).ascore("p", ["r"], RunContext(Budget(), run_manager=run))
    assert len(recorder.chat_starts) == 1
    tags, parent = recorder.chat_starts[0]
    assert "hia:judge" in tags
    assert parent == run.run_id


def test_constructor_validates() -> None:
    llm = FakeListChatModel(responses=["x"])
    with pytest.raises(ConfigError, match="objectives"):
        LLMJudgeScorer(llm, [])
    with pytest.raises(ConfigError, match="duplicate"):
        LLMJudgeScorer(llm, [Objective("a"), Objective("a")])
    with pytest.raises(ConfigError, match="max_concurrency"):
        LLMJudgeScorer(llm, [Objective("a")], max_concurrency=0)
    with pytest.raises(ConfigError, match="rubrics"):
        LLMJudgeScorer(llm, [Objective("a")], rubrics={"b": "x"})
    assert LLMJudgeScorer(llm, [Objective("a")]).model_calls_per_item == 2  # + 1 follow-up
    assert LLMJudgeScorer(llm, [Objective("a")], retries=0).model_calls_per_item == 1


FORMATS: list[Callable[[dict[str, int]], str]] = [
    lambda s: json.dumps(s),
    lambda s: "Sure, here is my evaluation:\n```json\n" + json.dumps(s, indent=2) + "\n```",
    lambda s: "\n".join(f"**{k.capitalize()}**: {v}/4" for k, v in s.items()),
    lambda s: (
        "My ratings -> "
        + json.dumps({"ratings": {k: {"score": v} for k, v in s.items()}})
        + " Thanks."
    ),
    lambda s: "\n".join(f"- {k} (0-4): {v}" for k, v in s.items()) + "\nOverall a decent answer.",
    lambda s: json.dumps({k.upper(): str(v) for k, v in s.items()}),
]


@pytest.mark.skipif(
    not HELPSTEER_SAMPLE.is_file(),
    reason=f"HelpSteer2 sample not found at {HELPSTEER_SAMPLE} (the shared data folder ../shared/data is absent)",
)
async def test_helpsteer_rows_parse_to_their_true_labels() -> None:
    rows = [json.loads(line) for line in HELPSTEER_SAMPLE.read_text().splitlines() if line.strip()]
    assert rows
    for index, row in enumerate(rows):
        labels = {n: int(row[n]) for n in HS}
        reply = FORMATS[index % len(FORMATS)](labels)
        model = FakeChatModel(answer=lambda p, i, reply=reply: reply)
        out = await LLMJudgeScorer(model, HS_OBJECTIVES).ascore(row["prompt"], [row["response"]])
        assert out == [{n: float(v) for n, v in labels.items()}], (index, reply)
        assert row["response"] in model.prompts[0]
        assert len(model.prompts) == 1  # no retry needed

"""Prompt optimizers: template composer, LLM chain parsing, mixing, request keeping."""

from __future__ import annotations

import pytest

from hia_chain.budget import Budget, Limits
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError
from hia_chain.goals import Objective
from hia_chain.optimizer import (
    Feedback,
    LLMPromptOptimizer,
    MixedOptimizer,
    OptimizeRequest,
    TemplateOptimizer,
    keeps_request,
    reward_context,
)
from hia_chain.optimizer._parse import parse_prompts
from hia_chain.optimizer.base import rewrite_problem
from hia_chain.optimizer.constraints import find_constraints
from tests.unit_tests.fakes import CountingChatModel

V = Objective(
    "verbosity", "0 = one sentence, 4 = many paragraphs", low_label="terse", high_label="long"
)
C = Objective("complexity")
T = Objective("formality", "0 = slang, 4 = legal prose", low=1, high=5)
PROMPT = "Explain how vaccines work."


def request(n: int = 6, feedback: Feedback | None = None, **goal: float) -> OptimizeRequest:
    objs = tuple(o for o in (V, C, T) if o.name in goal)
    return OptimizeRequest(PROMPT, objs, goal, n=n, feedback=feedback, seed=0)


async def test_template_targets_the_goal_first_and_keeps_the_request() -> None:
    out = await TemplateOptimizer().apropose(request(verbosity=0, complexity=4))
    assert len(out) == 6 and len({(p.prompt, p.max_tokens) for p in out}) == 6
    assert all(p.prompt.startswith(PROMPT) and keeps_request(PROMPT, p.prompt) for p in out)
    assert out[0].meta["levels"] == {"verbosity": 0, "complexity": 4}
    assert "one short sentence" in out[0].prompt


async def test_template_is_deterministic_per_seed_and_handles_custom_objectives() -> None:
    a = await TemplateOptimizer().apropose(request(formality=5))
    b = await TemplateOptimizer().apropose(request(formality=5))
    assert [p.prompt for p in a] == [p.prompt for p in b]
    assert "formality of about 5" in a[0].prompt


async def test_template_feedback_moves_against_the_measured_error() -> None:
    fb = Feedback(prompt="x", measured={"verbosity": 3.0}, meta={"levels": {"verbosity": 1}})
    out = await TemplateOptimizer().apropose(request(feedback=fb, verbosity=1))
    assert out[0].meta["levels"]["verbosity"] == 0  # came out 2 too long: ask for shorter


@pytest.mark.parametrize(
    "text",
    [
        '["Explain how vaccines work. Be brief.", "Explain how vaccines work simply."]',
        '```json\n{"prompts": ["Explain how vaccines work. Be brief.", "Explain how vaccines work simply."]}\n```',
        "Sure! Here are two:\n1. Explain how vaccines work. Be brief.\n2) Explain how vaccines work simply.\nHope it helps!",
        '- "Explain how vaccines work. Be brief."\n- "Explain how vaccines work simply."',
        "Explain how vaccines work. Be brief.\n\nExplain how vaccines work simply.",
    ],
)
def test_parser_tolerates_messy_output(text: str) -> None:
    assert parse_prompts(text) == [
        "Explain how vaccines work. Be brief.",
        "Explain how vaccines work simply.",
    ]


def test_keeps_request() -> None:
    assert keeps_request(PROMPT, "Please explain how vaccines work, in one sentence.")
    assert not keeps_request(PROMPT, "Write a haiku about autumn.")


async def test_llm_optimizer_sends_reward_context_and_counts_calls() -> None:
    llm = CountingChatModel(answer=lambda p, i: '["Explain how vaccines work. Be brief."]')
    budget = Budget(limits={"optimizer": Limits(calls=1)})
    ctx = RunContext(budget=budget)
    fb = Feedback("Explain how vaccines work. Be brief.", {"verbosity": 3.2})
    req = OptimizeRequest(PROMPT, (V,), {"verbosity": 1}, n=3, feedback=fb)
    out = await LLMPromptOptimizer(llm).apropose(req, ctx)
    assert [p.prompt for p in out] == ["Explain how vaccines work. Be brief."]
    assert budget.usage("optimizer").calls == 1 and budget.usage("optimizer").total_tokens > 0
    sent = llm.prompts[0]
    assert "verbosity 3.2 (target 1)" in sent and PROMPT in sent
    assert "target 1 on a scale from 0 (terse) to 4 (long)" in reward_context(req)
    with pytest.raises(BudgetExceededError):
        await LLMPromptOptimizer(llm).apropose(req, ctx)


async def test_mixed_interleaves_and_dedups() -> None:
    llm = CountingChatModel(
        answer=lambda p, i: (
            '["Explain how vaccines work. Be brief.", "Explain how vaccines work. Be brief."]'
        )
    )
    out = await MixedOptimizer([LLMPromptOptimizer(llm), TemplateOptimizer()]).apropose(
        request(n=4, verbosity=1)
    )
    assert len(out) == 4 and [p.origin for p in out[:2]] == ["llm", "template"]
    assert len({(p.prompt, p.system, p.max_tokens) for p in out}) == 4


@pytest.mark.timeout(10)
async def test_template_optimizer_scales_to_many_objectives() -> None:
    """Ten objectives: 5^10 level combinations exist, but only the nearest N are built."""
    objs = tuple(Objective(f"o{i}") for i in range(10))
    request = OptimizeRequest(
        prompt="Describe a cat.",
        objectives=objs,
        goal={o.name: 2.0 for o in objs},
        n=8,
        feedback=None,
        seed=0,
        avoid=frozenset(),
    )
    out = await TemplateOptimizer().apropose(request)
    assert len(out) == 8 and len({p.prompt for p in out}) == 8
    assert out[0].meta["levels"] == {o.name: 2 for o in objs}  # the target itself comes first


@pytest.mark.parametrize(
    ("rewrite", "reason"),
    [
        ("{{get-file}} Explain how vaccines work. {{answer}}", "placeholder"),
        ('{"prompt": "Explain how vaccines work.", "verbosity": 1}', "JSON"),
        ("Can you explain how vaccines work?", "restates"),
        ("Explain how vaccines work.", "restates"),
        ("Tell me about cooking.", "drops"),
        ("Explain how vaccines work. " + "Vaccines train the immune system. " * 20, "answer"),
    ],
)
def test_junk_rewrites_are_named(rewrite: str, reason: str) -> None:
    """Rewrites the embedded 135M model really produced, each rejected with its reason."""
    problem = rewrite_problem("Explain how vaccines work.", rewrite)
    assert problem is not None and reason.lower() in problem.lower()


@pytest.mark.parametrize(
    "rewrite",
    [
        "Explain how vaccines work. Be brief.",
        "Explain how vaccines work. Answer in one short sentence, as if to a child.",
        "In plain words, explain how vaccines work in two or three sentences.",
    ],
)
def test_real_instructions_pass(rewrite: str) -> None:
    assert rewrite_problem("Explain how vaccines work.", rewrite) is None


@pytest.mark.parametrize(
    ("prompt", "constraints"),
    [
        ("Write at least 300 words about the history of tea.", ["length"]),
        ("List five reasons to exercise.", ["length"]),
        ("Write a haiku about rain.", ["length"]),
        ("Answer in JSON: which fruit is healthiest?", ["format"]),
        ("In exactly three bullet points, explain why recycling matters.", ["length", "format"]),
        ("Why is the sky blue?", []),
    ],
)
def test_the_prompts_own_constraints_are_found(prompt: str, constraints: list[str]) -> None:
    assert find_constraints(prompt) == constraints


async def test_template_lets_the_prompts_own_constraints_win() -> None:
    prompt = "Write at least 300 words about the history of tea."
    req = OptimizeRequest(prompt, (V,), {"verbosity": 0}, n=3, seed=0)
    out = await TemplateOptimizer().apropose(req)
    assert all(p.prompt.startswith(prompt) for p in out)
    assert all("Keep every length requirement of the request above" in p.prompt for p in out)
    assert out[0].meta["constraints"] == ["length"]
    assert all(p.max_tokens is None for p in out)  # a cap would break "at least 300 words"
    plain = await TemplateOptimizer().apropose(request(n=3, verbosity=0))
    assert not any("requirement" in p.prompt for p in plain)
    assert any(p.max_tokens for p in plain)

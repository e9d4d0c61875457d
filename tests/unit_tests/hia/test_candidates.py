"""Candidates that differ by more than text: where the instruction goes, and an output cap.

Both are sent within the same call budget; the messages and ``max_tokens`` a model receives
are what the candidate says, a cap never exceeds the request's own bound, and the trace
shows both.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda

from hia_chain.aligned import AlignedChatModel
from hia_chain.budget import Budget
from hia_chain.context import RunContext, estimate_tokens, text_bytes
from hia_chain.goals import Objective
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.optimizer.base import OptimizeRequest, PromptOptimizer, Proposal
from hia_chain.optimizer.template import LENGTH_CAPS
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.search import HIASearch, Request, Response, SearchSettings
from hia_chain.search.stage2 import response_bound
from hia_chain.search.types import Candidate
from tests.unit_tests.fakes import CountingChatModel, WordCountScorer, instruction_following

V = Objective("verbosity", description="0 = one sentence, 4 = very long")
PROMPT = "Explain how tides work."


def aligned(model: object, **kw: object) -> AlignedChatModel:
    return AlignedChatModel(
        model=model,
        objectives=[V],
        scorers=[WordCountScorer()],
        heuristic=InstructionHeuristic([V]),
        goal={"verbosity": 0},
        filter="order",  # the optimizer's order: original, then each combo and its variants
        **kw,
    )


def test_template_proposes_each_dimension_only_when_asked() -> None:
    request = OptimizeRequest(PROMPT, (V,), {"verbosity": 0}, n=8, seed=0)

    async def proposals(optimizer: TemplateOptimizer) -> list[Proposal]:
        return await optimizer.apropose(request)

    import anyio

    plain = anyio.run(proposals, TemplateOptimizer(length_caps=False))
    assert all(p.system is None and p.max_tokens is None for p in plain)
    default = anyio.run(proposals, TemplateOptimizer())  # caps on, system placement off
    assert any(p.max_tokens for p in default) and not any(p.system for p in default)
    both = anyio.run(proposals, TemplateOptimizer(system_variants=True, length_caps=True))
    assert len(both) == 8
    system = [p for p in both if p.system is not None]
    capped = [p for p in both if p.max_tokens is not None]
    assert system and all(p.prompt == PROMPT for p in system)  # the user's turn unchanged
    assert capped and all(
        p.max_tokens == LENGTH_CAPS[p.meta["levels"]["verbosity"]] for p in capped
    )
    first = both[0]  # the combo nearest the target, then its two variants
    assert both[1].system == first.prompt.removeprefix(PROMPT).strip()
    assert both[2].prompt == first.prompt and both[2].max_tokens == LENGTH_CAPS[0]


async def test_system_placement_sends_the_instruction_as_a_system_message() -> None:
    model = CountingChatModel(answer=instruction_following(1))
    llm = aligned(model, budget=3, optimizer=TemplateOptimizer(system_variants=True))
    msg = await llm.ainvoke([SystemMessage("Be polite."), HumanMessage(PROMPT)])
    trace = msg.response_metadata["hia"]
    sent = [c for c in trace["candidates"] if c["sent"]]
    assert [c["placement"] for c in sent] == ["user", "user", "system"]
    assert model.calls == 3 == trace["calls"]
    instruction = sent[2]["system"]
    conversation = model.messages_seen[[c["id"] for c in sent].index(sent[2]["id"])]
    # the caller's system message first, the candidate's instruction after it; the user's turn
    # goes unchanged
    systems = [m for m in model.messages_seen if m[-1].text == PROMPT and "\n\n" in m[0].text]
    assert systems, conversation
    assert systems[0][0].text == f"Be polite.\n\n{instruction}"
    assert isinstance(systems[0][0], SystemMessage) and len(systems[0]) == 2
    appended = [m for m in model.messages_seen if m[-1].text == sent[1]["prompt"]]
    assert appended and appended[0][0].text == "Be polite."  # the plain candidate: as given


async def test_without_a_system_message_one_is_put_first() -> None:
    model = CountingChatModel(answer=instruction_following(2))
    llm = aligned(model, budget=3, optimizer=TemplateOptimizer(system_variants=True))
    msg = await llm.ainvoke(PROMPT)
    system = next(
        c for c in msg.response_metadata["hia"]["candidates"] if c["sent"] and c["system"]
    )
    seen = [m for m in model.messages_seen if isinstance(m[0], SystemMessage)]
    assert len(seen) == 1 and seen[0][0].text == system["system"] and seen[0][1].text == PROMPT


async def test_a_capped_candidate_is_sent_with_its_cap_and_the_others_with_the_request_bound() -> (
    None
):
    model = CountingChatModel(answer=instruction_following(3), max_tokens=200)
    llm = aligned(model, budget=3, max_tokens=100, optimizer=TemplateOptimizer(length_caps=True))
    msg = await llm.ainvoke(PROMPT)
    sent = [c for c in msg.response_metadata["hia"]["candidates"] if c["sent"]]
    assert [c["max_tokens"] for c in sent] == [None, None, LENGTH_CAPS[0]]
    assert sorted(k["max_tokens"] for k in model.call_kwargs) == [LENGTH_CAPS[0], 100, 100]
    assert model.calls == 3 == msg.response_metadata["hia"]["calls"]


async def test_a_cap_is_never_above_the_request_bound() -> None:
    model = CountingChatModel(answer=instruction_following(4), max_tokens=200)
    llm = aligned(model, budget=3, max_tokens=16, optimizer=TemplateOptimizer(length_caps=True))
    msg = await llm.ainvoke(PROMPT)
    candidates = msg.response_metadata["hia"]["candidates"]
    assert all(c["max_tokens"] is None for c in candidates)  # 24 > 16: the request's own bound
    assert [k["max_tokens"] for k in model.call_kwargs] == [16, 16, 16]


async def test_a_cap_is_never_above_a_bound_max_tokens() -> None:
    model = CountingChatModel(answer=instruction_following(4), max_tokens=200)
    llm = aligned(model.bind(max_tokens=16), budget=3, optimizer=TemplateOptimizer())
    msg = await llm.ainvoke(PROMPT)
    assert all(c["max_tokens"] is None for c in msg.response_metadata["hia"]["candidates"])
    assert [k.get("max_tokens", 16) for k in model.call_kwargs] == [16, 16, 16]


class OneVariant(PromptOptimizer):
    """Proposes one rewrite sent with a system instruction and a cap of ``cap`` tokens."""

    def __init__(self, cap: int) -> None:
        self.cap = cap

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        return [Proposal(request.prompt, "test", system="Answer briefly.", max_tokens=self.cap)]


def _responder(model: CountingChatModel):  # noqa: ANN202
    async def respond(request: Request) -> Response:
        return Response.from_message(
            await model.ainvoke(request.messages(), **request.model_kwargs())
        )

    return respond


@pytest.mark.parametrize(
    ("cap", "bound", "expected"), [(10, 50, 10), (500, 50, None), (50, 50, None)]
)
async def test_the_engine_clips_a_proposed_cap_to_the_request_bound(
    cap: int, bound: int, expected: int | None
) -> None:
    model = CountingChatModel(answer=instruction_following(5))
    engine = HIASearch([V], [WordCountScorer()], OneVariant(cap), InstructionHeuristic([V]))
    settings = SearchSettings(budget=2, filter="order", max_tokens=bound, candidates_per_round=2)
    result = await engine.run(PROMPT, {"verbosity": 0}, _responder(model), settings)
    variant = next(c for c in result.candidates if c.origin == "test")
    assert variant.max_tokens == expected and variant.sent
    assert model.calls == result.calls == 2
    assert {k.get("max_tokens") for k in model.call_kwargs} <= {None, 10}


async def test_token_budget_reserves_each_candidate_by_its_own_cap_and_system_text() -> None:
    """A pool with room for exactly the two calls as bounded: the capped, system-placed
    variant reserves its own (smaller) output and its instruction's bytes."""
    settings = SearchSettings(budget=2, filter="order", max_tokens=50, candidates_per_round=2)
    context = RunContext()
    plain = response_bound(Request(PROMPT), settings, context)
    variant = response_bound(Request(PROMPT, "Answer briefly.", 10), settings, context)
    assert plain is not None and variant is not None
    assert plain.total == estimate_tokens(PROMPT, 50)
    assert variant.output == 10
    assert variant.input == plain.input + text_bytes("Answer briefly.") + 16
    pool = Budget(calls=2, tokens=plain.total + variant.total)
    model = CountingChatModel(answer=instruction_following(6))
    engine = HIASearch([V], [WordCountScorer()], OneVariant(10), InstructionHeuristic([V]))
    result = await engine.run(PROMPT, {"verbosity": 0}, _responder(model), settings, shared=pool)
    assert model.calls == result.calls == 2 and not result.budget_exhausted
    assert pool.usage().calls == 2


def test_heuristics_see_the_instruction_wherever_it_is_sent() -> None:
    instruction = "Answer in one short sentence."
    appended = Candidate(id=1, prompt=f"{PROMPT}\n\n{instruction}", origin="t", round=0)
    system = Candidate(id=2, prompt=PROMPT, origin="t", round=0, system=instruction)
    capped = Candidate(id=3, prompt=appended.prompt, origin="t", round=0, max_tokens=24)
    assert instruction in system.text and system.text != appended.text
    assert capped.text.startswith(appended.prompt) and "24 tokens" in capped.text
    heuristic = InstructionHeuristic([V])

    async def predict(texts: Sequence[str]) -> list[float]:
        out = await heuristic.apredict(PROMPT, texts, ["verbosity"])
        return [p.scores["verbosity"] for p in out]

    import anyio

    a, s, c = anyio.run(predict, [appended.text, system.text, capped.text])
    assert a == s == c == 0  # the phrase's level, wherever the phrase is
    trace = system.trace()
    assert trace["placement"] == "system" and trace["system"] == instruction
    assert capped.trace()["max_tokens"] == 24 and appended.trace()["placement"] == "user"


async def test_variants_are_not_near_duplicates_of_their_twin() -> None:
    model = CountingChatModel(answer=instruction_following(7))
    optimizer = TemplateOptimizer(system_variants=True, length_caps=True)
    llm = aligned(model, budget=4, optimizer=optimizer)
    msg = await llm.ainvoke(PROMPT)
    rows = msg.response_metadata["hia"]["candidates"]
    assert not any(r["rejected"] for r in rows[:4]), rows[:4]
    assert {(r["placement"], r["max_tokens"]) for r in rows if r["sent"]} == {
        ("user", None),
        ("system", None),
        ("user", LENGTH_CAPS[0]),
    }


async def test_a_response_model_without_max_tokens_gets_no_capped_candidates() -> None:
    seen: list[dict[str, object]] = []

    def answer(messages: object, **kwargs: object) -> AIMessage:
        seen.append(kwargs)
        return AIMessage("Tides come from the moon's pull.")

    llm = aligned(RunnableLambda(answer), budget=3)  # a function: no `max_tokens` to honour
    msg = await llm.ainvoke(PROMPT)
    candidates = msg.response_metadata["hia"]["candidates"]
    assert len(seen) == 3 == msg.response_metadata["hia"]["calls"]
    assert all(c["max_tokens"] is None for c in candidates)
    assert not any("max_tokens" in kw for kw in seen)


async def test_an_answer_cut_by_a_candidates_own_cap_ends_on_a_whole_sentence() -> None:
    def answer(prompt: str, index: int) -> str:
        return " ".join(["Tides follow the moon closely."] * 16)  # 80 words

    model = CountingChatModel(answer=answer, truncate=True, max_tokens=200)
    llm = aligned(model, budget=3, max_tokens=100, optimizer=TemplateOptimizer(length_caps=True))
    msg = await llm.ainvoke(PROMPT)
    sent = [c for c in msg.response_metadata["hia"]["candidates"] if c["sent"]]
    capped = next(c for c in sent if c["max_tokens"] == LENGTH_CAPS[0])
    # 24 words were paid for; the answer keeps the 4 whole sentences in them
    assert capped["response"] == " ".join(["Tides follow the moon closely."] * 4)
    uncapped = next(c for c in sent if c["max_tokens"] is None)
    assert len(uncapped["response"].split()) == 80  # within the caller's bound: not cut


def test_cut_to_sentence_keeps_whole_sentences_only() -> None:
    from hia_chain.instructions import cut_to_sentence

    assert cut_to_sentence("It works. It is a way to give your body against") == "It works."
    assert cut_to_sentence('He said "hi." Then he left and') == 'He said "hi."'
    assert cut_to_sentence("Version 3.5 is out and") == "Version 3.5 is out and"

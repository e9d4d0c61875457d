"""AlignedChatModel over fake chat models: the LangChain surface of HIA."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from hia_chain.aligned import AlignedChatModel
from hia_chain.budget import Budget
from hia_chain.errors import BudgetExceededError, ConfigError
from hia_chain.goals import Objective
from tests.unit_tests.fakes import CountingChatModel, WordCountScorer, instruction_following

V = Objective("verbosity")


def aligned(model: CountingChatModel, **kw) -> AlignedChatModel:
    kw.setdefault("goal", {"verbosity": 1})
    return AlignedChatModel(model=model, objectives=[V], scorers=[WordCountScorer()], **kw)


async def test_ainvoke_answers_within_budget_with_trace_and_usage() -> None:
    model = CountingChatModel(answer=instruction_following(0))
    msg = await aligned(model, budget=3, search="beam").ainvoke("Explain how vaccines work.")
    assert isinstance(msg, AIMessage)
    trace = msg.response_metadata["hia"]
    assert model.calls == trace["calls"] == 3
    assert msg.content == next(
        c["response"] for c in trace["candidates"] if c["id"] == trace["best"]
    )
    sent = [c for c in trace["candidates"] if c["sent"]]
    assert len(sent) == 3 and all(c["measured"] is not None for c in sent)
    assert all(c["predicted"] is not None for c in sent)
    # usage is the sum over the response calls the fake reported
    assert msg.usage_metadata["total_tokens"] == trace["usage"]["response"]["total_tokens"] > 0


def test_sync_invoke_batch_and_stream() -> None:
    model = CountingChatModel(answer=instruction_following(1))
    llm = aligned(model, budget=2)
    assert llm.invoke("Tell me about owls.").content
    outs = llm.batch(["Tell me about cats.", "Tell me about dogs."])
    assert len(outs) == 2 and model.calls == 6
    chunks = list(llm.stream("Tell me about bats."))
    assert len(chunks) == 1 and chunks[0].response_metadata["hia"]["calls"] == 2


async def test_astream_and_sync_call_inside_a_running_loop() -> None:
    model = CountingChatModel(answer=instruction_following(2))
    llm = aligned(model, budget=1)
    chunks = [c async for c in llm.astream("Tell me about owls.")]
    assert len(chunks) == 1
    # invoke() from inside a running event loop must not deadlock or re-enter the loop
    assert llm.invoke("Tell me about owls.").content


async def test_per_call_overrides_and_history() -> None:
    model = CountingChatModel(answer=instruction_following(3))
    llm = aligned(model, budget=1)
    msgs = [
        SystemMessage("be nice"),
        HumanMessage("Tell me about owls."),
        AIMessage("Owls!"),
        HumanMessage("And bats?"),
    ]
    msg = await llm.ainvoke(msgs, goal={"verbosity": 3}, budget=2, search="greedy")
    trace = msg.response_metadata["hia"]
    assert (
        trace["goal"] == {"verbosity": 3.0} and trace["calls"] == 2 and trace["search"] == "greedy"
    )
    assert all(p.startswith("And bats?") for p in model.prompts)


async def test_abatch_with_shared_budget_never_overspends() -> None:
    model = CountingChatModel(answer=instruction_following(4), latency=0.001)
    pool = Budget(calls=7)
    llm = aligned(model, budget=2, shared_budget=pool)
    outs = await llm.abatch([f"Question {i} about owls" for i in range(6)], return_exceptions=True)
    assert model.calls == pool.usage().calls <= 7
    assert any(isinstance(o, BudgetExceededError) for o in outs)
    finished = [o for o in outs if isinstance(o, AIMessage)]
    assert sum(o.response_metadata["hia"]["calls"] for o in finished) == model.calls


async def test_progress_events_and_nested_runs() -> None:
    model = CountingChatModel(answer=instruction_following(5))
    llm = aligned(model, budget=2)
    events = [e async for e in llm.astream_events("Tell me about owls.", version="v2")]
    names = [e["name"] for e in events if e["event"] == "on_custom_event"]
    assert {"hia_proposed", "hia_round", "hia_response", "hia_done"} <= set(names)
    top = next(
        e for e in events if e["event"] == "on_chat_model_start" and e["name"] == "AlignedChatModel"
    )
    inner = [
        e
        for e in events
        if e["event"] == "on_chat_model_start" and e["name"] == type(model).__name__
    ]
    assert len(inner) == 2
    assert all(top["run_id"] in e["parent_ids"] for e in inner)
    assert any(e["event"] == "on_chain_start" and e["name"] == "hia_search" for e in events)


def test_usage_callback_counts_inner_calls_once() -> None:
    model = CountingChatModel(answer=instruction_following(6))
    with get_usage_metadata_callback() as cb:
        msg = aligned(model, budget=2).invoke("Tell me about owls.")
    assert list(cb.usage_metadata) == [model.model_name]
    assert cb.usage_metadata[model.model_name]["total_tokens"] == msg.usage_metadata["total_tokens"]


def test_dry_run_plan_spends_nothing() -> None:
    model = CountingChatModel()
    llm = aligned(model, budget=4, search="beam", max_tokens=100)
    plan = llm.plan()
    # per call: max_tokens + 64 of chat-template overhead (+ the prompt's characters)
    assert plan.response_calls == 4 and plan.response_tokens == 4 * 164
    assert plan.rounds == 4  # at most: a round short of candidates leaves calls to the next
    assert model.calls == 0
    with pytest.raises(ConfigError, match="unknown setting"):
        llm.plan(serch="beam")


def test_bad_input_is_typed() -> None:
    model = CountingChatModel()
    with pytest.raises(ConfigError, match="unknown objective"):
        aligned(model, goal={"tone": 2})
    with pytest.raises(ConfigError, match="budget"):
        aligned(model, budget=0)
    llm = aligned(model)
    with pytest.raises(ConfigError, match="human message"):
        llm.invoke([SystemMessage("hi")])
    with pytest.raises(ConfigError, match="outside the objective's scale"):
        llm.invoke("hi", goal={"verbosity": 9})
    with pytest.raises(ConfigError, match="goal is empty"):
        aligned(model, goal={}).invoke("hi")
    assert model.calls == 0

"""A LangGraph ReAct agent over the real served embedded model (``transformers serve``).

Why: the step policy, the per-step budget and the message stream must hold against a real
OpenAI-compatible endpoint, counted where requests leave the client. The 135M model decides
for itself whether to call a tool, so the test derives the expected calls from the steps it
took: one per tool-call step, the budget for the final answer.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool

from hia_chain import AlignedChatModel, ThreadBudgets

pytestmark = pytest.mark.integration


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny and 21 C in {city}."


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"It is 10:00 in {city}."


async def test_react_agent_over_the_served_model(served: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent
    llm, requests = served.chat_openai(max_tokens=24, temperature=0.7)
    threads = ThreadBudgets(calls=6)
    aligned = AlignedChatModel(
        model=llm, goal={"verbosity": 1}, budget=2, agent_budget=threads, trace="summary"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agent = create_react_agent(aligned, [get_weather, get_time])
    config = {"configurable": {"thread_id": "t1"}, "recursion_limit": 8}
    streamed: list[AIMessage] = []
    state: dict[str, Any] = {}
    async for mode, data in agent.astream(
        {"messages": [HumanMessage("What is the weather in Paris?")]},
        config,
        stream_mode=["messages", "values"],
    ):
        if mode == "messages" and isinstance(data[0], AIMessage):
            streamed.append(data[0])
        elif mode == "values":
            state = data
    steps = [m for m in state["messages"] if isinstance(m, AIMessage)]
    traces = [m.response_metadata["hia"] for m in steps]
    # what left the client is what the traces and the thread's budget say, within its cap
    assert requests.count == sum(t["calls"] for t in traces) == threads["t1"].usage().calls <= 6
    for message, trace in zip(steps, traces, strict=True):
        assert trace["agent"]["steps"] == "final"
        if message.tool_calls:
            assert trace["calls"] == 1 and trace["agent"]["step"] == "tool_call"
        elif not trace["budget_exhausted"]:
            assert trace["calls"] == 2 and trace["agent"]["step"] == "answer"
    # one streamed message per agent step: the chosen answer, never a candidate
    assert [m.id for m in streamed] == [m.id for m in steps]
    assert steps[-1].text.strip() or traces[-1]["budget_exhausted"]


async def test_init_aligned_chat_model_over_the_served_model(served: Any) -> None:
    from hia_chain import init_aligned_chat_model

    aligned = init_aligned_chat_model(
        f"openai:{served.model}",
        goal={"verbosity": 1},
        budget=2,
        trace="none",
        model_kwargs={
            "base_url": served.base_url,
            "api_key": "not-needed",
            "max_tokens": 16,
            "max_retries": 0,
        },
    )
    msg = await aligned.ainvoke("Name a fruit.")
    assert msg.text.strip()
    assert msg.response_metadata["hia"]["calls"] == 2
    assert msg.response_metadata["hia"]["agent"]["step"] == "aligned"

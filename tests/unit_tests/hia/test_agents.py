"""AlignedChatModel as a LangGraph agent's model: step policy, run/thread budgets, streaming,
config pass-through, trace modes, rate limiter and cache (real LangGraph, fake models).

Why: an agent calls its model once per step. Aligning a step that only picks a tool pays the
whole budget for nothing, candidates must not leak into the user's message stream, the
caller's config must reach the wrapped model, and a checkpointed thread must stay small.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.globals import set_llm_cache
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import InMemoryRateLimiter
from langchain_core.runnables import ConfigurableField, Runnable, RunnableLambda
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from hia_chain import (
    AlignedChatModel,
    Budget,
    ConfigError,
    Objective,
    ThreadBudgets,
    init_aligned_chat_model,
)
from tests.unit_tests.fakes import WordCountScorer, instruction_following

V = Objective("verbosity")
QUESTION = "What should I wear in Paris today?"


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return f"Sunny and 21 C in {city}."


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"It is 10:00 in {city}."


class AgentFake(BaseChatModel):
    """A tool-calling model: with tools bound it calls each tool once, one step at a time,
    then answers in text whose length follows the length instructions anywhere in the
    conversation (system message included). Calls are logged to a list shared by copies."""

    # `Any`, so pydantic keeps the very list when configurable fields rebuild the model
    log: Any = Field(default_factory=list)
    label: str = "a"
    temperature: float = 0.7
    seen_temperatures: Any = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "agent-fake"

    def bind_tools(
        self, tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool], **kw: Any
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kw)

    def _reply(self, messages: list[BaseMessage], kwargs: dict[str, Any]) -> AIMessage:
        index = len(self.log)
        self.log.append(list(messages))
        self.seen_temperatures.append(self.temperature)
        tools = kwargs.get("tools") or []
        used = sum(isinstance(m, ToolMessage) for m in messages)
        if used < len(tools):
            name = tools[used]["function"]["name"]
            call = {"name": name, "args": {"city": "Paris"}, "id": f"call_{index}"}
            return AIMessage(content="", tool_calls=[call])
        cues = " ".join(m.text for m in messages if not isinstance(m, ToolMessage | AIMessage))
        text = f"[{self.label}] " + instruction_following(index)(cues, index)
        n = len(text.split())
        return AIMessage(
            content=text,
            usage_metadata={"input_tokens": 10, "output_tokens": n, "total_tokens": 10 + n},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, kwargs))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Word by word, so a candidate that streamed would show in any message stream."""
        message = self._reply(messages, kwargs)
        if message.tool_calls:
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", tool_calls=message.tool_calls)
            )
            return
        for word in message.text.split(" "):
            yield ChatGenerationChunk(message=AIMessageChunk(content=word + " "))


def make(model: Any = None, **kw: Any) -> AlignedChatModel:
    kw.setdefault("goal", {"verbosity": 1})
    kw.setdefault("objectives", [V])
    kw.setdefault("scorers", [WordCountScorer()])
    kw.setdefault("budget", 2)
    return AlignedChatModel(model=model if model is not None else AgentFake(), **kw)


def react_agent(llm: Any, checkpointer: Any = None) -> Any:
    with warnings.catch_warnings():  # create_react_agent is deprecated for langchain's own
        warnings.simplefilter("ignore")
        from langgraph.prebuilt import create_react_agent

        return create_react_agent(llm, [get_weather, get_time], checkpointer=checkpointer)


def ai_messages(state: dict[str, Any]) -> list[AIMessage]:
    return [m for m in state["messages"] if isinstance(m, AIMessage)]


# -- the step policy ---------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "calls"), [(None, 4), ("all", 6)])
async def test_react_agent_aligns_only_the_final_answer(steps: str | None, calls: int) -> None:
    """Two tool steps and a final answer at budget 2: 1 + 1 + 2 calls by default ("final"),
    2 + 2 + 2 when every step is aligned."""
    inner = AgentFake()
    agent = react_agent(make(inner, steps=steps))
    state = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    steps_made = ai_messages(state)
    assert [bool(m.tool_calls) for m in steps_made] == [True, True, False]
    assert len(inner.log) == calls
    assert sum(m.response_metadata["hia"]["calls"] for m in steps_made) == calls
    final = steps_made[-1].response_metadata["hia"]
    assert final["agent"]["steps"] == ("final" if steps is None else "all")
    assert final["agent"]["continuation"] is True
    if steps is None:
        assert [m.response_metadata["hia"]["agent"]["step"] for m in steps_made] == [
            "tool_call",
            "tool_call",
            "answer",
        ]
    # after tool results the user's turn is never rewritten (by default no call rewrites
    # it): the goal's instructions went into a system message
    after_tools = [sent for sent in inner.log if isinstance(sent[-1], ToolMessage)]
    for sent in inner.log if steps is None else after_tools:
        assert [m.text for m in sent if isinstance(m, HumanMessage)] == [QUESTION]
    systems = [m for sent in after_tools for m in sent if isinstance(m, SystemMessage)]
    assert systems and all("follow these instructions" in m.text for m in systems)


async def test_final_step_answer_counts_the_first_call_as_a_candidate() -> None:
    inner = AgentFake()
    llm = make(inner, budget=3, steps="final")
    msg = await llm.ainvoke(QUESTION)  # no tools bound: the first call is a text answer
    trace = msg.response_metadata["hia"]
    assert len(inner.log) == trace["calls"] == 3
    assert trace["agent"]["step"] == "answer" and trace["agent"]["continuation"] is False
    first = trace["candidates"][0]
    assert first["origin"] == "original" and first["sent"] and first["measured"] is not None
    assert sorted(c["id"] for c in trace["candidates"]) == list(range(len(trace["candidates"])))


async def test_callable_policy_and_bad_policies() -> None:
    inner = AgentFake()

    def pass_through(messages: Sequence[BaseMessage]) -> str:
        return "pass"

    msg = await make(inner, budget=3, steps=pass_through).ainvoke(QUESTION)
    assert len(inner.log) == 1
    assert msg.response_metadata["hia"]["agent"] == {
        "steps": "pass_through",
        "decision": "pass",
        "continuation": False,
        "budget_scope": "request",
        "step": "passed",
    }
    with pytest.raises(ConfigError, match="returned 'sometimes'"):
        await make(steps=lambda m: "sometimes").ainvoke(QUESTION)
    with pytest.raises(ConfigError, match="steps"):
        make(steps="every")
    with pytest.raises(ConfigError, match="trace"):
        make(trace="tiny")


async def test_forced_tool_choice_and_structured_output_default_to_all() -> None:
    inner = AgentFake()
    llm = make(inner, budget=2).bind_tools([get_weather], tool_choice="any")
    msg = await llm.ainvoke(QUESTION)
    assert msg.response_metadata["hia"]["agent"]["steps"] == "all"
    assert len(inner.log) == 2


# -- one budget per run or thread -------------------------------------------------------------


async def test_thread_budget_caps_every_step_and_run_of_a_thread() -> None:
    inner = AgentFake()
    threads = ThreadBudgets(calls=5)
    agent = react_agent(make(inner, agent_budget=threads))
    ask = {"messages": [HumanMessage(QUESTION)]}
    first = await agent.ainvoke(ask, {"configurable": {"thread_id": "ana"}})
    assert len(inner.log) == 4 and threads["ana"].usage().calls == 4
    # The second run has 1 call left: its first tool step; the next step cannot be paid for,
    # so the agent ends with an empty, flagged answer (no unbudgeted call).
    second = await agent.ainvoke(ask, {"configurable": {"thread_id": "ana"}})
    assert len(inner.log) == 5 and threads["ana"].usage().calls == 5
    last = ai_messages(second)[-1]
    assert last.content == "" and not last.tool_calls
    hia = last.response_metadata["hia"]
    assert hia["budget_exhausted"] is True and hia["calls"] == 0
    assert hia["agent"]["budget_scope"] == "thread"
    assert ai_messages(first)[-1].response_metadata["hia"]["budget_exhausted"] is False
    # another thread has its own cap
    await agent.ainvoke(ask, {"configurable": {"thread_id": "ben"}})
    assert threads["ben"].usage().calls == 4 and len(inner.log) == 9
    with pytest.raises(ConfigError, match="thread_id"):
        await agent.ainvoke(ask)


async def test_run_budget_through_the_config_and_mid_step_exhaustion() -> None:
    inner = AgentFake()
    agent = react_agent(make(inner, budget=3))
    run = Budget(calls=4)
    state = await agent.ainvoke(
        {"messages": [HumanMessage(QUESTION)]}, {"configurable": {"hia_budget": run}}
    )
    # 1 + 1 for the tool steps, then the final step gets 2 of its 3 calls: best so far, flagged
    assert len(inner.log) == run.usage().calls == 4
    final = ai_messages(state)[-1]
    assert final.text and final.response_metadata["hia"]["budget_exhausted"] is True
    assert final.response_metadata["hia"]["agent"]["budget_scope"] == "run"


async def test_run_budget_must_sit_under_the_shared_pool() -> None:
    pool = Budget(calls=10)
    llm = make(shared_budget=pool)
    with pytest.raises(ConfigError, match="parent"):
        await llm.ainvoke(QUESTION, {"configurable": {"hia_budget": Budget(calls=3)}})
    msg = await llm.ainvoke(QUESTION, {"configurable": {"hia_budget": Budget(3, parent=pool)}})
    assert pool.usage().calls == msg.response_metadata["hia"]["calls"] == 2
    with pytest.raises(ConfigError, match="hia_budget"):
        await llm.ainvoke(QUESTION, {"configurable": {"hia_budget": 3}})


# -- streaming ------------------------------------------------------------------------------


async def test_only_the_chosen_answers_stream_in_messages_mode() -> None:
    agent = react_agent(make(AgentFake()))
    streamed = [
        message
        async for message, _ in agent.astream(
            {"messages": [HumanMessage(QUESTION)]}, stream_mode="messages"
        )
        if isinstance(message, AIMessage)
    ]
    # one message per agent step (two tool calls, one answer), no candidate
    assert len(streamed) == 3
    assert [bool(m.tool_calls) for m in streamed] == [True, True, False]
    assert streamed[-1].response_metadata["hia"]["calls"] == 2


async def test_astream_events_streams_only_the_aligned_answers() -> None:
    agent = react_agent(make(AgentFake(), budget=3))
    events = [
        e async for e in agent.astream_events({"messages": [HumanMessage(QUESTION)]}, version="v2")
    ]
    streams = [e for e in events if e["event"] == "on_chat_model_stream"]
    # one chunk per agent step, all from the aligned model; the fake streams word by word
    # when asked, so any candidate that streamed would show here
    assert [e["name"] for e in streams] == ["AlignedChatModel"] * 3
    assert streams[-1]["data"]["chunk"].text == ai_messages(events[-1]["data"]["output"])[-1].text
    responses = [
        e for e in events if e["event"] == "on_chat_model_start" and "hia:response" in e["tags"]
    ]
    assert len(responses) == 1 + 1 + 3 and all("nostream" in e["tags"] for e in responses)
    assert sum(e["event"] == "on_custom_event" and e["name"] == "hia_done" for e in events) == 3
    # the aligned model alone (the root run): no candidate streams either
    root = [e async for e in make(AgentFake(), budget=3).astream_events(QUESTION, version="v2")]
    assert not [
        e for e in root if e["event"] == "on_chat_model_stream" and e["name"] != "AlignedChatModel"
    ]


# -- the caller's config reaches the wrapped model --------------------------------------------


async def test_configurable_alternatives_on_the_wrapped_model() -> None:
    a, b = AgentFake(label="a"), AgentFake(label="b")
    inner = a.configurable_alternatives(ConfigurableField(id="llm"), default_key="a", b=b)
    llm = make(inner)
    msg = await llm.ainvoke(QUESTION, {"configurable": {"llm": "b"}})
    assert msg.text.startswith("[b]") and len(b.log) == 2 and not a.log
    msg = await llm.ainvoke(QUESTION)
    assert msg.text.startswith("[a]") and len(a.log) == 2


async def test_configurable_fields_on_the_wrapped_model() -> None:
    base = AgentFake()
    inner = base.configurable_fields(temperature=ConfigurableField(id="temperature"))
    await make(inner).ainvoke(QUESTION, {"configurable": {"temperature": 0.1}})
    assert base.seen_temperatures == [0.1, 0.1]


async def test_recursion_limit_run_name_and_configurable_reach_the_call() -> None:
    seen: list[dict[str, Any]] = []

    def model(messages: Any, config: dict[str, Any], **kwargs: Any) -> AIMessage:
        seen.append(config)
        return AIMessage(content="word " * 20)

    llm = make(RunnableLambda(model))
    config = {"configurable": {"user": "ana"}, "recursion_limit": 7, "run_name": "writer"}
    events = [e async for e in llm.astream_events(QUESTION, config, version="v2")]
    assert len(seen) == 2
    for c in seen:
        assert c["configurable"]["user"] == "ana" and c["recursion_limit"] == 7
    names = {e["name"] for e in events if e["event"] == "on_chain_start"}
    assert "writer:response" in names


# -- trace modes and a checkpointer round trip ------------------------------------------------


async def test_checkpointer_round_trip_keeps_the_trace_small() -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    sizes: dict[str, int] = {}
    for mode in ("full", "summary", "none"):
        saver = InMemorySaver()
        agent = react_agent(make(AgentFake(), budget=8, trace=mode), checkpointer=saver)
        config = {"configurable": {"thread_id": mode}}
        await agent.ainvoke({"messages": [HumanMessage(QUESTION)]}, config)
        state = await agent.aget_state(config)  # read back from the checkpointer
        final = ai_messages(state.values)[-1]
        hia = final.response_metadata["hia"]
        sizes[mode] = len(json.dumps(hia))
        assert hia["calls"] == 8 and hia["budget_exhausted"] is False
        assert hia["agent"]["step"] == "answer"
        # the thread goes on from the checkpoint
        await agent.ainvoke({"messages": [HumanMessage("And tomorrow?")]}, config)
        again = await agent.aget_state(config)
        assert len(again.values["messages"]) > len(state.values["messages"])
    assert sizes["none"] < 300 < sizes["summary"] < 2_000 < sizes["full"]


# -- rate limiter and cache -------------------------------------------------------------------


class CountingLimiter(InMemoryRateLimiter):
    acquired: int = 0

    async def aacquire(self, *, blocking: bool = True) -> bool:
        type(self).acquired += 1
        return True


async def test_rate_limiter_acquires_once_per_response_call() -> None:
    CountingLimiter.acquired = 0
    inner = AgentFake()
    llm = make(inner, budget=3, rate_limiter=CountingLimiter())
    msg = await llm.ainvoke(QUESTION)
    assert CountingLimiter.acquired == len(inner.log) == msg.response_metadata["hia"]["calls"] == 3
    # kept when the aligned model is rebuilt per call by configurable fields
    per_user = llm.configurable_fields(budget=ConfigurableField(id="budget"))
    await per_user.ainvoke(QUESTION, {"configurable": {"budget": 2}})
    assert CountingLimiter.acquired == len(inner.log) == 5


@pytest.fixture
def llm_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    try:
        yield cache
    finally:
        set_llm_cache(None)


async def test_sampled_candidates_bypass_the_llm_cache(llm_cache: InMemoryCache) -> None:
    inner = AgentFake()
    msg = await make(inner, budget=3, search="sample").ainvoke(QUESTION)
    trace = msg.response_metadata["hia"]
    assert len(inner.log) == trace["calls"] == 3  # three real calls, no cache hit
    answers = [c["response"] for c in trace["candidates"] if c["sent"]]
    assert len(set(answers)) == 3  # three different samples compared, not copies of one


# -- langchain's create_agent and init_chat_model ---------------------------------------------


async def test_langchain_create_agent_aligns_only_the_final_answer() -> None:
    from langchain.agents import create_agent

    inner = AgentFake()
    agent = create_agent(make(inner, trace="none"), tools=[get_weather, get_time])
    state = await agent.ainvoke({"messages": [HumanMessage(QUESTION)]})
    steps_made = ai_messages(state)
    assert [m.response_metadata["hia"]["calls"] for m in steps_made] == [1, 1, 2]
    assert len(inner.log) == 4
    assert steps_made[-1].response_metadata["hia"]["agent"]["step"] == "answer"


def test_init_aligned_chat_model_builds_over_init_chat_model() -> None:
    from langchain_openai import ChatOpenAI

    endpoint = {"base_url": "http://127.0.0.1:9/v1", "api_key": "x", "temperature": 0.2}
    llm = init_aligned_chat_model(
        "openai:gpt-x", goal={"verbosity": 1}, budget=3, trace="summary", model_kwargs=endpoint
    )
    assert isinstance(llm, AlignedChatModel) and llm.budget == 3 and llm.trace == "summary"
    assert isinstance(llm.model, ChatOpenAI)
    assert llm.model.model_name == "gpt-x" and llm.model.temperature == 0.2
    with pytest.raises(ConfigError, match="budget"):
        init_aligned_chat_model(
            "openai:gpt-x", goal={"verbosity": 1}, budjet=3, model_kwargs=endpoint
        )


def test_thread_budgets_take_prices_from_the_parent() -> None:
    from hia_chain.budget import Budget, Price

    pool = Budget(prices={"response": Price(1.0, 2.0)})
    ThreadBudgets(cost=1.0, parent=pool)  # priced by the pool: accepted, like Budget(parent=)
    with pytest.raises(ConfigError, match="prices"):
        ThreadBudgets(cost=1.0)

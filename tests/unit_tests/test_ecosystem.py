"""AlignedChatModel inside the LangChain ecosystem: tracing, usage callbacks, LangSmith params,
tools, structured output, configurable fields and serialization (fakes only, no network).

Why these tests: an aligned call makes many model calls (optimizer, judge, response). Users
see them through LangChain's own machinery (``astream_events``, LangSmith, usage callbacks),
so that machinery must show each call once, under the aligned call, under its own model
name. And the aligned model must compose like any chat model: in LCEL, with tools, with
structured output, and configured per user at run time.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.load import dumpd, load
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField
from langchain_core.tools import tool
from pydantic import BaseModel

from hia_chain.aligned import AlignedChatModel
from hia_chain.goals import Objective
from hia_chain.optimizer import LLMPromptOptimizer
from hia_chain.scorers import LLMJudgeScorer
from tests.unit_tests.fakes import WordCountScorer, instruction_following
from tests.unit_tests.test_standard_unit import ToolFakeChatModel

V = Objective("verbosity")
PROMPT = "Explain how vaccines work."


def _rewrites(optimizer_prompt: str) -> str:
    """What a good optimizer model answers: the request kept, one instruction added each."""
    match = re.search(r"Prompt:\n(.*?)\n\n", optimizer_prompt, re.S)
    request = match.group(1) if match else optimizer_prompt
    return json.dumps([f"{request} Answer in one short sentence.", f"{request} Explain in detail."])


def response_model(seed: int = 0, name: str = "response-fake") -> ToolFakeChatModel:
    """A response model whose answer length (and tool-call argument length) follows the
    prompt's length instruction, so the verbosity goal has something to choose between."""
    follow = instruction_following(seed)
    return ToolFakeChatModel(
        model_name=name,
        answer=lambda p: follow(p, 0),
        args=lambda p: {"text": follow(p, 0)},
    )


def optimizer_model() -> ToolFakeChatModel:
    return ToolFakeChatModel(model_name="optimizer-fake", answer=_rewrites)


def judge_model() -> ToolFakeChatModel:
    return ToolFakeChatModel(model_name="judge-fake", answer=lambda p: '{"verbosity": 1}')


def aligned(model: Any = None, **kw: Any) -> AlignedChatModel:
    kw.setdefault("goal", {"verbosity": 1})
    kw.setdefault("objectives", [V])
    kw.setdefault("scorers", [WordCountScorer()])
    return AlignedChatModel(model=model or response_model(), **kw)


def full_pipeline(**kw: Any) -> AlignedChatModel:
    """Every stage that can call a model does: an LLM optimizer, an LLM judge, the response."""
    return aligned(
        optimizer=LLMPromptOptimizer(optimizer_model()),
        scorers=[LLMJudgeScorer(judge_model(), [V])],
        **kw,
    )


# -- tracing ---------------------------------------------------------------------------------


async def test_optimizer_judge_and_response_runs_nest_under_the_aligned_run() -> None:
    llm = full_pipeline(budget=2)
    events = [e async for e in llm.astream_events(PROMPT, version="v2")]
    top = next(
        e for e in events if e["event"] == "on_chat_model_start" and e["name"] == "AlignedChatModel"
    )
    search = next(e for e in events if e["event"] == "on_chain_start" and e["name"] == "hia_search")
    assert search["parent_ids"] == [top["run_id"]]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        if e["event"] == "on_chat_model_start" and e["run_id"] != top["run_id"]:
            role = next(t for t in e["tags"] if t.startswith("hia:"))
            by_role.setdefault(role, []).append(e)
    assert {r: len(v) for r, v in by_role.items()} == {
        "hia:optimizer": 1,
        "hia:response": 2,
        "hia:judge": 2,
    }
    for runs in by_role.values():
        for e in runs:
            # descendants of the aligned run, through the hia_search chain run
            assert e["parent_ids"][:2] == [top["run_id"], search["run_id"]]
    # the optimizer's model run sits inside its LCEL chain (prompt | model)
    optimizer = by_role["hia:optimizer"][0]
    assert len(optimizer["parent_ids"]) == 3
    # progress is reported as custom events of the same trace
    custom = [e for e in events if e["event"] == "on_custom_event"]
    assert [e["name"] for e in custom][0] == "hia_proposed"
    assert custom[-1]["name"] == "hia_done" and custom[-1]["data"]["calls"] == 2
    assert all(top["run_id"] in e["parent_ids"] for e in custom)


class _Runs(BaseCallbackHandler):
    """Records run id -> (parent id, name, tags) of every chat-model and chain run."""

    def __init__(self) -> None:
        self.runs: dict[Any, tuple[Any, str, list[str]]] = {}

    def _record(self, serialized: dict[str, Any] | None, kw: dict[str, Any]) -> None:
        ser = serialized or {}
        name = kw.get("name") or ser.get("name") or (ser.get("id") or [""])[-1]
        self.runs[kw["run_id"]] = (kw.get("parent_run_id"), name, list(kw.get("tags") or []))

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        self._record(serialized, kw)

    def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
        self._record(serialized, kw)


def test_sync_invoke_in_a_chain_nests_every_call_under_the_aligned_run() -> None:
    """The sync path (a worker loop under ``invoke``) keeps the same tree as ``ainvoke``."""
    handler = _Runs()
    chain = ChatPromptTemplate.from_template("{q}") | full_pipeline(budget=2) | StrOutputParser()
    assert chain.invoke({"q": PROMPT}, config={"callbacks": [handler]})
    aligned_run = next(r for r, (_, name, _) in handler.runs.items() if name == "AlignedChatModel")

    def ancestors(run: Any) -> list[Any]:
        out = []
        while (run := handler.runs.get(run, (None,))[0]) is not None:
            out.append(run)
        return out

    models = [
        r
        for r, (_, name, tags) in handler.runs.items()
        if name == "ToolFakeChatModel" and any(t.startswith("hia:") for t in tags)
    ]
    assert len(models) == 5  # 1 optimizer, 2 responses, 2 judge calls
    assert all(aligned_run in ancestors(r) for r in models)


@pytest.mark.filterwarnings(
    "ignore:The method `BaseChatModel._achat_model_stream_v3` is in beta"
    ":langchain_core._api.beta_decorator.LangChainBetaWarning"
)
async def test_streams_one_last_chunk_and_keeps_the_run_tree() -> None:
    """Streaming must not cost tracing: the one chunk comes from the same nested search."""
    llm = full_pipeline(budget=2)
    chunks = [c async for c in llm.astream(PROMPT)]
    assert len(chunks) == 1
    (chunk,) = chunks
    assert isinstance(chunk, AIMessageChunk) and chunk.chunk_position == "last"
    assert chunk.response_metadata["hia"]["calls"] == 2 and chunk.usage_metadata
    sync_chunks = list(llm.stream(PROMPT))
    assert [type(c) for c in sync_chunks] == [AIMessageChunk]
    events = [e async for e in llm.astream_events(PROMPT, version="v2")]
    top = next(
        e for e in events if e["event"] == "on_chat_model_start" and e["name"] == "AlignedChatModel"
    )
    nested = [
        e for e in events if e["event"] == "on_chat_model_start" and e["run_id"] != top["run_id"]
    ]
    assert len(nested) == 5 and all(top["run_id"] in e["parent_ids"] for e in nested)
    stream = await llm.astream_events(PROMPT, version="v3")
    message = await stream.output
    assert message.text and message.response_metadata["hia"]["calls"] == 2


class LoopBoundChatModel(ToolFakeChatModel):
    """Binds an async resource to the first event loop that calls it and fails on any other,
    as provider SDKs do with their cached, pooled async HTTP clients (langchain-openai keeps
    one per base URL: a second ``asyncio.run`` then fails with "Event loop is closed")."""

    loops: list[Any] = []

    async def _agenerate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> Any:
        loop = asyncio.get_running_loop()
        if self.loops and self.loops[0] is not loop:
            raise RuntimeError("Event loop is closed")
        self.loops.append(loop)
        return self._generate(messages, stop=stop, **kw)


def test_sync_calls_in_a_row_use_the_inner_model_sync_api() -> None:
    inner = LoopBoundChatModel(loops=[])
    llm = aligned(inner, budget=2)
    assert llm.invoke(PROMPT).content
    assert llm.invoke(PROMPT).content
    assert len(llm.batch([PROMPT, PROMPT])) == 2


# -- usage ----------------------------------------------------------------------------------


def test_usage_callback_reports_each_model_under_its_own_name_once() -> None:
    llm = full_pipeline(budget=2)
    with get_usage_metadata_callback() as cb:
        msg = llm.invoke(PROMPT)
    usage = msg.response_metadata["hia"]["usage"]
    assert set(cb.usage_metadata) == {"response-fake", "optimizer-fake", "judge-fake"}
    for name, role in (
        ("response-fake", "response"),
        ("optimizer-fake", "optimizer"),
        ("judge-fake", "judge"),
    ):
        assert cb.usage_metadata[name]["total_tokens"] == usage[role]["total_tokens"] > 0
    # The aligned message carries the response tokens (for callers that read it) but no
    # model_name, so the usage callback does not count them a second time.
    assert msg.usage_metadata["total_tokens"] == usage["response"]["total_tokens"]
    assert "model_name" not in msg.response_metadata
    assert msg.response_metadata["inner_model_name"] == "response-fake"


# -- LangSmith params -------------------------------------------------------------------------


async def test_ls_params_name_the_inner_model_and_the_wrapper() -> None:
    llm = aligned(response_model(name="gpt-fake"))
    params = llm._get_ls_params()
    assert params["ls_provider"] == "hia/toolfakechatmodel"
    assert params["ls_model_name"] == "gpt-fake"
    assert params["ls_model_type"] == "chat"
    # LangChain puts them in the run's metadata, where LangSmith reads them
    events = [e async for e in llm.astream_events(PROMPT, version="v2")]
    start = next(e for e in events if e["name"] == "AlignedChatModel")
    assert start["metadata"]["ls_provider"] == "hia/toolfakechatmodel"
    assert start["metadata"]["ls_model_name"] == "gpt-fake"


# -- tools and structured output ----------------------------------------------------------------


@tool
def record_answer(text: str) -> str:
    """Record the answer to show the user."""
    return text


async def test_bind_tools_aligns_the_tool_arguments_and_keeps_the_tool_call() -> None:
    inner = response_model()
    # steps="all": align the tool call too (the default with free tool choice, "final", passes
    # a tool call through at one call; see tests/unit_tests/hia/test_agents.py)
    llm = aligned(inner, budget=3, goal={"verbosity": 0}, steps="all").bind_tools([record_answer])
    msg = await llm.ainvoke(PROMPT)
    assert isinstance(msg, AIMessage)
    trace = msg.response_metadata["hia"]
    assert trace["calls"] == 3
    (call,) = msg.tool_calls
    assert call["name"] == "record_answer"
    best = next(c for c in trace["candidates"] if c["id"] == trace["best"])
    # scored on the JSON arguments, and the shortest arguments won (goal: verbosity 0)
    assert best["response"] == json.dumps([call["args"]])
    sent = [c for c in trace["candidates"] if c["sent"]]
    assert best["measured"]["verbosity"] == min(c["measured"]["verbosity"] for c in sent)
    assert len({c["response"] for c in sent}) > 1


async def test_tool_call_answer_keeps_the_provider_content() -> None:
    llm = aligned(budget=1).bind_tools([record_answer])
    msg = await llm.ainvoke(PROMPT)
    assert msg.tool_calls and msg.content == ""


class Summary(BaseModel):
    """A summary for the user."""

    text: str


async def test_with_structured_output_returns_the_best_aligned_object() -> None:
    structured = aligned(budget=2, goal={"verbosity": 0}).with_structured_output(Summary)
    out = await structured.ainvoke(PROMPT)
    assert isinstance(out, Summary) and len(out.text.split()) < 40
    raw = await aligned(budget=2).with_structured_output(Summary, include_raw=True).ainvoke(PROMPT)
    assert isinstance(raw["parsed"], Summary) and raw["parsing_error"] is None
    assert raw["raw"].response_metadata["hia"]["calls"] == 2


# -- configurable fields: one chain, many users --------------------------------------------------


def _configurable_chain() -> Any:
    llm = aligned(budget=1).configurable_fields(
        goal=ConfigurableField(id="goal", name="Goal", description="Target per objective"),
        budget=ConfigurableField(id="budget", name="Budget", description="Calls per request"),
        search=ConfigurableField(id="search", name="Search"),
        reward=ConfigurableField(id="reward", name="Reward function"),
    )
    return ChatPromptTemplate.from_template("{q}") | llm


async def test_configurable_fields_serve_two_users_from_one_chain() -> None:
    chain = _configurable_chain()
    alice = {"configurable": {"goal": {"verbosity": 0}, "budget": 2, "reward": "max_error"}}
    bob = {"configurable": {"goal": {"verbosity": 4}, "budget": 3, "search": "greedy"}}
    a, b = await chain.abatch([{"q": PROMPT}, {"q": PROMPT}], config=[alice, bob])
    ta, tb = a.response_metadata["hia"], b.response_metadata["hia"]
    assert ta["goal"] == {"verbosity": 0.0} and tb["goal"] == {"verbosity": 4.0}
    assert (ta["calls"], ta["reward_function"], ta["search"]) == (2, "max_error", "bon")
    assert (tb["calls"], tb["reward_function"], tb["search"]) == (3, "euclidean", "greedy")
    assert len(a.content.split()) < len(b.content.split())
    # no configurable: the model's own defaults
    plain = await chain.ainvoke({"q": PROMPT})
    assert plain.response_metadata["hia"]["goal"] == {"verbosity": 1.0}
    assert plain.response_metadata["hia"]["calls"] == 1


def test_configurable_fields_are_listed_in_the_config_schema() -> None:
    schema = _configurable_chain().config_schema().model_json_schema()
    props = schema["$defs"]["Configurable"]["properties"]
    assert {"goal", "budget", "search", "reward"} <= set(props)


# -- serialization ---------------------------------------------------------------------------


@pytest.mark.filterwarnings(
    "ignore:The function `load` is in beta:langchain_core._api.beta_decorator.LangChainBetaWarning"
)
def test_serialization_is_declared_unsupported_not_silently_lossy() -> None:
    """``dumpd`` gives LangChain's "not_implemented" stub (fine for tracing) and ``load``
    refuses it: the optimizer, scorers, heuristic state and shared budget are live objects a
    JSON round-trip would silently replace with defaults."""
    llm = aligned()
    assert not AlignedChatModel.is_lc_serializable()
    data = dumpd(llm)
    assert data["type"] == "not_implemented"
    assert data["id"][-1] == "AlignedChatModel"
    with pytest.raises(NotImplementedError):
        load(data, allowed_objects="all")

"""A budget-capped LangGraph agent: one hard cap of response-model calls per conversation thread.

Use case: an assistant on a paid API must never spend more than N calls on one user's
conversation, however many turns and steps it takes. ``ThreadBudgets(calls=N)`` gives every
LangGraph thread (``configurable={"thread_id": ...}``) its own cap; every aligned step of every
run on that thread draws from it. A step that finds the cap partly spent uses what is left and
says so (``budget_exhausted``, the best answer so far); one that finds it empty answers with an
empty, flagged message instead of calling the model, so the graph ends cleanly. The thread is
checkpointed (``InMemorySaver``) with ``trace="summary"``, so each stored answer carries its
scores and spend, not every candidate.

The graph: a tool step (a calculator or a glossary lookup, chosen by the script because the
embedded 135M model cannot emit tool calls reliably; it writes the tool call and its result as
messages, as a tool-calling model's step would) and an answer step by the aligned model. After
a tool result the goal's instructions go into a system message; the user's turn is never
rewritten. With a tool-calling endpoint, ``create_react_agent(aligned, tools)`` lets the model
choose the tools: tool-call steps then pass through at one call and only the final answer is
aligned (``steps="final"``, the default when tools are bound).

Run it (defaults to the embedded SmolLM2, offline)::

    python cookbook/budget_capped_agent.py
    python cookbook/budget_capped_agent.py --base-url http://127.0.0.1:8000/v1 --model my-model
"""

from __future__ import annotations

import argparse
import ast
import json
import operator
import os
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph

from hia_chain import AlignedChatModel, ThreadBudgets

MAX_TOKENS = 40
CALLS_PER_THREAD = 5  # one conversation may call the response model at most this many times
CALLS_PER_ANSWER = 2

_OPS: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}


def calculator(expression: str) -> str:
    """Arithmetic on + - * / only: a tool with no ``eval``."""

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](ev(node.left), ev(node.right))
        msg = f"unsupported expression: {expression!r}"
        raise ValueError(msg)

    return f"{expression} = {ev(ast.parse(expression, mode='eval').body):g}"


GLOSSARY = {
    "photosynthesis": "Plants use sunlight, water and carbon dioxide to make sugar and oxygen.",
    "tide": "The regular rise and fall of the sea, caused mostly by the Moon's gravity.",
}


def glossary(term: str) -> str:
    return f"{term}: {GLOSSARY.get(term, 'no entry')}"


# The tool each question needs (the script plays the tool-choosing model).
TOOLS: dict[str, tuple[Callable[[str], str], str]] = {
    "How many minutes are in three days?": (calculator, "3 * 24 * 60"),
    "What is photosynthesis?": (glossary, "photosynthesis"),
    "What causes the tides?": (glossary, "tide"),
}
THREADS = {
    "ana": [*TOOLS, "Suggest a name for a pet turtle."],
    "ben": ["What is photosynthesis?"],
}


def response_model(base_url: str | None, model: str | None) -> BaseChatModel:
    """The black-box model to align: any OpenAI-compatible endpoint, else the embedded one."""
    if base_url:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=base_url,
            model=model or "default",
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            max_tokens=MAX_TOKENS,
            temperature=0.7,
            max_retries=0,  # retries are the budget's: every attempt is counted
        )
    from hia_chain.local import LocalChatModel

    return LocalChatModel(model_path=model, max_tokens=MAX_TOKENS, temperature=0.7, seed=0)


def build_agent(aligned: AlignedChatModel) -> Any:
    """tool step (if the question needs one) -> aligned answer, checkpointed per thread."""

    def use_tool(state: MessagesState) -> dict[str, Any]:
        question = state["messages"][-1].text
        if question not in TOOLS:
            return {"messages": []}
        tool, arg = TOOLS[question]
        call_id = f"call_{len(state['messages'])}"
        call = {"name": tool.__name__, "args": {"input": arg}, "id": call_id}
        return {
            "messages": [
                AIMessage(content="", tool_calls=[call]),
                ToolMessage(content=tool(arg), tool_call_id=call_id, name=tool.__name__),
            ]
        }

    def answer(state: MessagesState, config: RunnableConfig) -> dict[str, Any]:
        return {"messages": [aligned.invoke(state["messages"], config)]}

    graph = StateGraph(MessagesState)
    graph.add_node("use_tool", use_tool)
    graph.add_node("answer", answer)
    graph.add_edge(START, "use_tool")
    graph.add_edge("use_tool", "answer")
    graph.add_edge("answer", END)
    return graph.compile(checkpointer=InMemorySaver())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://host/v1")
    parser.add_argument("--model", help="model name at the endpoint (or a local model folder)")
    args = parser.parse_args()

    threads = ThreadBudgets(calls=CALLS_PER_THREAD)
    aligned = AlignedChatModel(
        model=response_model(args.base_url, args.model),
        goal={"verbosity": 1},  # short answers: an assistant's replies should be brief
        budget=CALLS_PER_ANSWER,
        agent_budget=threads,
        trace="summary",  # what each checkpoint keeps of the search
        seed=0,
    )
    agent = build_agent(aligned)
    print(
        f"Cap: {CALLS_PER_THREAD} calls per thread; each answer may spend up to "
        f"{CALLS_PER_ANSWER} call(s) of at most {MAX_TOKENS} output tokens."
    )
    for thread, questions in THREADS.items():
        config: RunnableConfig = {"configurable": {"thread_id": thread}}
        for i, question in enumerate(questions, 1):
            state = agent.invoke({"messages": [HumanMessage(question)]}, config)
            tool_result = state["messages"][-2]
            if isinstance(tool_result, ToolMessage):
                print(f"[{thread}] tool {tool_result.name}: {tool_result.text}")
            reply = state["messages"][-1]
            hia = reply.response_metadata["hia"]
            if not hia["calls"]:
                print(f"[{thread}] answer {i}: stopped, budget exhausted (0 calls made)")
                continue
            flag = ", budget exhausted (best so far)" if hia["budget_exhausted"] else ""
            print(
                f"[{thread}] answer {i}: {hia['calls']} call(s){flag}, verbosity "
                f"{hia['scores']['verbosity']:.1f}: {reply.text.strip()}"
            )
    saved = agent.get_state({"configurable": {"thread_id": "ana"}}).values["messages"]
    largest = max(
        len(json.dumps(m.response_metadata["hia"])) for m in saved if "hia" in m.response_metadata
    )
    usage = {thread: threads[thread].usage() for thread in THREADS}
    print(
        "; ".join(
            f"Thread {t}: spent {u.calls} of {CALLS_PER_THREAD} calls, {u.total_tokens} tokens"
            for t, u in usage.items()
        )
    )
    print(f"Checkpoint of ana: {len(saved)} messages, largest trace {largest} bytes")
    if any(u.calls > CALLS_PER_THREAD for u in usage.values()):  # a hard cap: never happens
        raise SystemExit("overspent")


if __name__ == "__main__":
    main()

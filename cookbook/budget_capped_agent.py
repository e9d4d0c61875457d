"""A budget-capped agent: several steps share one hard pool of response-model calls.

Use case: an agent or batch job on a paid API must never spend more than N calls in total,
however many steps it plans. Every step is an aligned request with its own per-request budget,
and all of them draw from one shared ``Budget(calls=...)`` pool. A request that finds the pool
partly spent uses what is left; one that finds it empty raises ``BudgetExceededError`` before
any call is made, and the agent stops cleanly and reports what it spent.

The steps are "tool-like": a deterministic tool (a calculator, a glossary lookup) runs first
and the aligned model writes the answer from its result. The tools are chosen by the script,
not by the model, because the embedded 135M model cannot emit tool calls reliably. With a
tool-calling endpoint, ``aligned.bind_tools([...])`` lets the model choose the tools and the
same shared budget still caps every call.

Run it (defaults to the embedded SmolLM2, offline)::

    python cookbook/budget_capped_agent.py
    python cookbook/budget_capped_agent.py --base-url http://127.0.0.1:8000/v1 --model my-model
"""

from __future__ import annotations

import argparse
import ast
import operator
import os
from collections.abc import Callable
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel

from hia_chain import AlignedChatModel, Budget, BudgetExceededError

MAX_TOKENS = 40
POOL_CALLS = 5  # the whole agent may call the response model at most this many times
CALLS_PER_STEP = 2

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


@dataclass(frozen=True)
class Step:
    question: str
    tool: Callable[[str], str] | None = None
    tool_input: str = ""


PLAN = [
    Step("How many minutes are in three days?", calculator, "3 * 24 * 60"),
    Step("What is photosynthesis?", glossary, "photosynthesis"),
    Step("What causes the tides?", glossary, "tide"),
    Step("Suggest a name for a pet turtle."),
]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://host/v1")
    parser.add_argument("--model", help="model name at the endpoint (or a local model folder)")
    args = parser.parse_args()

    pool = Budget(calls=POOL_CALLS)
    aligned = AlignedChatModel(
        model=response_model(args.base_url, args.model),
        goal={"verbosity": 1},  # short answers: an agent's steps should be brief
        budget=CALLS_PER_STEP,
        shared_budget=pool,
        seed=0,
    )
    plan = aligned.plan()
    print(
        f"Pool: {POOL_CALLS} calls for {len(PLAN)} steps; each step may spend up to "
        f"{plan.response_calls} call(s) of at most {MAX_TOKENS} output tokens."
    )

    done = 0
    for i, step in enumerate(PLAN, 1):
        prompt = step.question
        if step.tool is not None:
            observation = step.tool(step.tool_input)
            print(f"step {i}: tool {step.tool.__name__}({step.tool_input!r}) -> {observation}")
            prompt = f"{step.question}\nUse this fact: {observation}"
        try:
            message = aligned.invoke(prompt)
        except BudgetExceededError as exc:
            print(f"step {i}: stopped, budget exhausted ({exc})")
            break
        trace = message.response_metadata["hia"]
        done += 1
        print(
            f"step {i}: {trace['calls']} call(s), verbosity {trace['scores']['verbosity']:.1f}: "
            f"{message.text.strip()}"
        )

    spent = pool.usage()
    print(
        f"Finished {done} of {len(PLAN)} steps; spent {spent.calls} of {POOL_CALLS} calls, "
        f"{spent.total_tokens} tokens."
    )
    if spent.calls > POOL_CALLS:  # the budget is a hard cap: this never happens
        raise SystemExit("overspent")


if __name__ == "__main__":
    main()

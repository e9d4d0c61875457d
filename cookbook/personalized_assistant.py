"""A personalized assistant: one chain, a goal vector and a learned heuristic per user.

Use case: each user wants answers of a different shape (Ana: one-liners in a neutral tone;
Ben: a bit longer and enthusiastic). One chain serves them all: the goal and the stage-1
heuristic are configurable fields, chosen per request through
``config={"configurable": {...}}``. Each user has their own ``LearnedHeuristic``, which learns
from the answers measured for that user's requests how the response model actually reacts to
each added instruction, so its predictions (and the stage-1 filter) get better as the user keeps
asking. The script prints the heuristic's prediction error on each request: the first
request's error is the "before" (nothing learned yet), the last one's the "after".

What each user's heuristic learned is kept per user and per response model, across restarts:
in a SQLite file by default (``--db``), or in Redis with ``--redis-url`` so that every worker
process of the app learns into (and predicts from) the same state.

Run it (defaults to the embedded SmolLM2, offline)::

    python cookbook/personalized_assistant.py
    python cookbook/personalized_assistant.py --base-url http://127.0.0.1:8000/v1 --model my-model
    python cookbook/personalized_assistant.py --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import ConfigurableField

from hia_chain import (
    AlignedChatModel,
    InstructionHeuristic,
    RedisObservationStore,
    SQLiteObservationStore,
)
from hia_chain.scorers.learned import LearnedHeuristic
from hia_chain.scorers.text import BUILTIN_OBJECTIVES
from hia_chain.stores import observation_key

MAX_TOKENS = 32
OBJECTIVES = [BUILTIN_OBJECTIVES["verbosity"], BUILTIN_OBJECTIVES["sentiment"]]
USERS: dict[str, dict[str, float]] = {
    "ana": {"verbosity": 0, "sentiment": 2},  # one-liners, neutral
    "ben": {"verbosity": 1, "sentiment": 4},  # a little longer, enthusiastic
}
QUESTIONS = ["What is a rainbow?", "Why do cats purr?", "How do plants grow?"]


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


def prediction_error(trace: dict[str, Any]) -> float:
    """Mean |predicted − measured| over the candidates sent and the goal's objectives."""
    errors = [
        abs(c["predicted"][k] - c["measured"][k])
        for c in trace["candidates"]
        if c["sent"] and c["measured"] and c["predicted"]
        for k in trace["goal"]
    ]
    return sum(errors) / len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://host/v1")
    parser.add_argument("--model", help="model name at the endpoint (or a local model folder)")
    cache = Path(os.environ.get("HIA_CHAIN_CACHE", Path.home() / ".cache" / "hia_chain"))
    parser.add_argument(
        "--db",
        default=str(cache / "personalized_assistant.sqlite"),
        help="SQLite file keeping what was learned per user and model (default: %(default)s)",
    )
    parser.add_argument("--redis-url", help="keep it in Redis instead, shared by every process")
    args = parser.parse_args()
    model_name = args.model or "embedded-smollm2"

    def store(user: str) -> RedisObservationStore | SQLiteObservationStore:
        """Where ``user``'s observations of this response model live."""
        key = observation_key(user, model_name)
        if args.redis_url:
            return RedisObservationStore(args.redis_url, key)
        Path(args.db).parent.mkdir(parents=True, exist_ok=True)
        return SQLiteObservationStore(args.db, key)

    aligned = AlignedChatModel(
        model=response_model(args.base_url, args.model), objectives=OBJECTIVES, budget=2, seed=0
    ).configurable_fields(
        goal=ConfigurableField(id="goal", name="Goal", description="Target per objective, 0–4"),
        heuristic=ConfigurableField(id="heuristic", name="Stage-1 heuristic"),
    )
    chain = ChatPromptTemplate.from_messages([("human", "{question}")]) | aligned

    heuristics = {
        user: LearnedHeuristic(
            fallback=InstructionHeuristic(OBJECTIVES), objectives=OBJECTIVES, store=store(user)
        )
        for user in USERS
    }
    errors: dict[str, list[float]] = {user: [] for user in USERS}
    for question in QUESTIONS:
        for user, goal in USERS.items():
            config = {"configurable": {"goal": goal, "heuristic": heuristics[user]}}
            message = chain.invoke({"question": question}, config=config)
            trace = message.response_metadata["hia"]
            errors[user].append(prediction_error(trace))
            scores = ", ".join(f"{k} {v:.1f}" for k, v in trace["scores"].items())
            print(
                f"{user} | {question} | measured {scores} | "
                f"prediction error {errors[user][-1]:.2f}\n    {message.text.strip()}"
            )

    for user, errs in errors.items():
        learned = heuristics[user].n_observations
        print(
            f"{user}: prediction error before {errs[0]:.2f} -> after {errs[-1]:.2f} "
            f"({learned} answers learned from)"
        )


if __name__ == "__main__":
    main()

"""HIA over a real OpenAI-compatible server (transformers serve + the embedded SmolLM2)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from hia_chain import AlignedChatModel, Budget, BudgetExceededError
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.text import BUILTIN_OBJECTIVES

pytestmark = pytest.mark.integration

OBJECTIVES = list(BUILTIN_OBJECTIVES.values())


def aligned_over(llm: Any, **kw: Any) -> AlignedChatModel:
    kw.setdefault("goal", {"verbosity": 1})
    return AlignedChatModel(model=llm, heuristic=InstructionHeuristic(OBJECTIVES), **kw)


async def test_answers_within_budget_and_counts_match_the_server(served: Any) -> None:
    llm, counter = served.chat_openai(max_tokens=24, temperature=0.7)
    msg = await aligned_over(llm, budget=2, search="greedy").ainvoke("Why is the sky blue?")
    trace = msg.response_metadata["hia"]
    assert counter.count == trace["calls"] == 2
    assert msg.content and trace["scores"]["verbosity"] >= 0
    sent = [c for c in trace["candidates"] if c["sent"]]
    assert msg.usage_metadata is not None
    assert msg.usage_metadata["output_tokens"] == trace["usage"]["response"]["output_tokens"] > 0
    assert len(sent) == 2


async def test_abatch_with_a_shared_budget_never_overspends(served: Any) -> None:
    llm, counter = served.chat_openai(max_tokens=16, temperature=0.7)
    pool = Budget(calls=3)
    aligned = aligned_over(llm, budget=2, shared_budget=pool)
    outs = await aligned.abatch(
        ["Name a fruit.", "Name a colour.", "Name a city."], return_exceptions=True
    )
    assert counter.count == pool.usage().calls <= 3
    spent = sum(o.response_metadata["hia"]["calls"] for o in outs if isinstance(o, AIMessage))
    assert spent == counter.count
    assert all(isinstance(o, AIMessage | BudgetExceededError) for o in outs)


def test_cli_align_with_base_url(served: Any) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENAI_API_KEY": "not-needed"}
    cmd = [
        sys.executable,
        "-m",
        "hia_chain.cli",
        "align",
        "Why is the sky blue?",
        "--goal",
        "verbosity=0",
        "--budget",
        "1",
        "--heuristic",
        "instruction",
        "--base-url",
        served.base_url,
        "--model",
        served.model,
        "--max-tokens",
        "24",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["calls"] == 1 <= data["budget"] and data["answer"]
    assert set(data["scores"]) == {"verbosity"}
    assert sum(c["sent"] for c in data["candidates"]) == 1
    assert {"prompt", "predicted", "measured", "reward", "sent"} <= set(data["candidates"][0])

"""LocalChatModel and the ``hia-chain align`` main job on the real embedded SmolLM2.

Why: the unit suites run these paths on a tiny random model; only the real weights show that
the chat template, left padding, stop strings, token counts and the default CLI pipeline
(drafts, mixed optimizer, budgeted calls) hold together. Outputs are kept to a few tokens.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

PROMPTS = ["Name a fruit.", "What colour is the sky?", "Say hello in French."]


@pytest.fixture(scope="module")
def greedy(embedded_path: Path) -> Any:
    from hia_chain.local import LocalChatModel

    return LocalChatModel(model_path=str(embedded_path), temperature=0, max_tokens=12)


def test_batched_equals_single_at_temperature_zero(greedy: Any) -> None:
    single = [greedy.invoke(p) for p in PROMPTS]
    batched = greedy.batch(PROMPTS)
    assert [m.content for m in batched] == [m.content for m in single]
    assert all(m.content.strip() for m in single)
    for m in single:
        usage = m.usage_metadata
        assert usage is not None and usage["input_tokens"] > 5
        assert 0 < usage["output_tokens"] <= 12
        assert m.response_metadata["finish_reason"] in {"stop", "length"}


async def test_async_batch_and_stream_agree_with_invoke(greedy: Any) -> None:
    want = [greedy.invoke(p).content for p in PROMPTS]
    assert [m.content for m in await greedy.abatch(PROMPTS)] == want
    chunks = [c async for c in greedy.astream(PROMPTS[0])]
    assert "".join(c.text for c in chunks) == want[0]
    assert chunks[-1].usage_metadata and chunks[-1].usage_metadata["output_tokens"] > 0


def test_stop_sequence_cuts_the_answer(greedy: Any) -> None:
    full = greedy.invoke(PROMPTS[1]).content
    words = full.split()
    assert len(words) > 2, full
    cut = greedy.invoke(PROMPTS[1], stop=[words[2]]).content
    assert words[2] not in cut and full.startswith(cut)


def test_align_main_job_on_the_embedded_model(embedded_path: Path) -> None:
    """What ``make run`` runs, sized down: template optimizer, free heuristic, 2 calls."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HIA_CHAIN_CACHE": str(embedded_path.parent)}
    cmd = [
        sys.executable,
        "-m",
        "hia_chain.cli",
        "align",
        "Explain how vaccines work.",
        "--goal",
        "verbosity=1",
        "--goal",
        "complexity=1",
        "--budget",
        "2",
        "--max-tokens",
        "48",
        "--candidates",
        "4",
        "--seed",
        "0",
        "--json",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=280)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout)
    assert data["answer"].strip() and data["calls"] == 2 == data["budget"]
    assert set(data["scores"]) == {"verbosity", "complexity"}
    sent = [c for c in data["candidates"] if c["sent"]]
    assert len(sent) == 2 and all(c["measured"] is not None for c in sent)
    # the free heuristic predicted every candidate it ranked; nothing but the 2 calls was paid
    assert all(c["predicted"] is not None for c in sent)
    assert data["usage"]["response"]["calls"] == 2
    assert data["usage"]["draft"]["calls"] == data["usage"]["optimizer"]["calls"] == 0

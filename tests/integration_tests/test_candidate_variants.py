"""Candidates with a system instruction and an output cap, against the real served model.

What reaches ``transformers serve`` is what the trace says: one request per call, the capped
candidate's answer within its cap, and every call inside the budget.
"""

from __future__ import annotations

import pytest
from langchain_core.messages import HumanMessage

from hia_chain import AlignedChatModel
from hia_chain.optimizer import TemplateOptimizer
from hia_chain.optimizer.template import LENGTH_CAPS
from tests.integration_tests.conftest import Served

pytestmark = pytest.mark.integration


async def test_system_and_capped_candidates_reach_the_server(served: Served) -> None:
    llm, counter = served.chat_openai(max_tokens=64, temperature=0.7)
    aligned = AlignedChatModel(
        model=llm,
        goal={"verbosity": 0},
        budget=4,
        filter="order",  # original, the nearest combo, its system and capped variants
        optimizer=TemplateOptimizer(system_variants=True, length_caps=True),
    )
    result = await aligned.arun_search([HumanMessage("Explain how tides work.")])
    sent = [c for c in result.candidates if c.sent]
    assert counter.count == result.calls == 4 == len(sent)
    assert {(c.placement, c.max_tokens) for c in sent} == {
        ("user", None),
        ("system", None),
        ("user", LENGTH_CAPS[0]),
    }
    assert all(c.measured is not None and c.response is not None for c in sent)
    for c in sent:
        assert c.response is not None and c.response.output_tokens is not None
        assert c.response.output_tokens <= (c.max_tokens or 64)
    traced = result.trace()["candidates"]
    assert {(t["placement"], t["max_tokens"]) for t in traced if t["sent"]} == {
        (c.placement, c.max_tokens) for c in sent
    }

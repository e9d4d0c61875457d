"""What HIA adds on top of the response model's latency, measured against a fake model.

With a response model of fixed latency, the ideal wall time of one request is
rounds × latency (calls within a round run concurrently); anything above it is HIA's own
local work (proposing, heuristic scoring, reference scoring). ``abatch`` throughput is
compared with the ideal of requests / concurrency × rounds × latency.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from hia_chain.aligned import AlignedChatModel
from hia_chain.scorers.base import Heuristic

__all__ = ["FixedLatencyChatModel", "OverheadRow", "measure_overhead", "measure_throughput"]


class FixedLatencyChatModel(BaseChatModel):
    """Answers after ``latency`` seconds with a length that follows the prompt's wording."""

    latency: float = 0.5

    @property
    def _llm_type(self) -> str:
        return "fixed-latency-fake"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        raise NotImplementedError("async only: use ainvoke")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        await anyio.sleep(self.latency)
        prompt = messages[-1].text
        words = 12 if "short" in prompt or "brief" in prompt else 120 if "detail" in prompt else 60
        text = " ".join(["Vaccines train the immune system."] * (words // 5))
        usage = {
            "input_tokens": len(prompt.split()),
            "output_tokens": words,
            "total_tokens": words + len(prompt.split()),
        }
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content=text, usage_metadata=usage))]
        )


@dataclass(frozen=True)
class OverheadRow:
    heuristic: str
    search: str
    budget: int
    median_seconds: float
    ideal_seconds: float

    @property
    def ratio(self) -> float:
        return self.median_seconds / self.ideal_seconds


async def measure_overhead(
    heuristics: dict[str, Callable[[], Heuristic]],
    *,
    latency: float = 0.5,
    searches: Sequence[tuple[str, int]] = (("bon", 4), ("greedy", 2), ("beam", 4)),
    repeats: int = 3,
    goal: dict[str, float] | None = None,
) -> list[OverheadRow]:
    """Median wall time per request for each heuristic × search, with its ideal."""
    rows = []
    for name, factory in heuristics.items():
        for search, budget in searches:
            model = AlignedChatModel(
                model=FixedLatencyChatModel(latency=latency),
                heuristic=factory(),
                goal=goal or {"verbosity": 1, "complexity": 1},
                search=search,
                budget=budget,
            )
            times = []
            for i in range(repeats):
                t0 = time.perf_counter()
                await model.ainvoke(f"Explain how vaccines work ({i}).")
                times.append(time.perf_counter() - t0)
            rounds = model._settings({}).rounds
            rows.append(
                OverheadRow(name, search, budget, statistics.median(times), rounds * latency)
            )
    return rows


async def measure_throughput(
    heuristic: Callable[[], Heuristic],
    *,
    requests: int = 64,
    concurrency: int = 16,
    latency: float = 0.5,
    budget: int = 2,
) -> tuple[float, float]:
    """(requests per second, ideal requests per second) for ``abatch`` with bon at ``budget``."""
    model = AlignedChatModel(
        model=FixedLatencyChatModel(latency=latency),
        heuristic=heuristic(),
        goal={"verbosity": 1},
        search="bon",
        budget=budget,
    )
    prompts = [f"Question {i}: how do plants grow?" for i in range(requests)]
    t0 = time.perf_counter()
    await model.abatch(prompts, config={"max_concurrency": concurrency})
    seconds = time.perf_counter() - t0
    ideal = requests / (-(-requests // concurrency) * latency) if requests else 0.0
    return requests / seconds, ideal

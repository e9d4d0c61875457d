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

from langchain_core.language_models import LanguageModelInput

from hia_chain.aligned import AlignedChatModel
from hia_chain.scorers.base import Heuristic
from hia_chain.search import SearchSettings
from hia_chain.search.types import SearchName
from hia_chain.testing import FakeChatModel, instruction_following

__all__ = ["OverheadRow", "measure_overhead", "measure_throughput"]


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
    searches: Sequence[tuple[SearchName, int]] = (("bon", 4), ("greedy", 2), ("beam", 4)),
    repeats: int = 3,
    goal: dict[str, float] | None = None,
) -> list[OverheadRow]:
    """Median wall time per request for each heuristic × search, with its ideal."""
    rows = []
    for name, factory in heuristics.items():
        for search, budget in searches:
            model = AlignedChatModel(
                model=FakeChatModel(answer=instruction_following(0), latency=latency),
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
            rounds = SearchSettings(search=search, budget=budget).rounds
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
        model=FakeChatModel(answer=instruction_following(0), latency=latency),
        heuristic=heuristic(),
        goal={"verbosity": 1},
        search="bon",
        budget=budget,
    )
    prompts: list[LanguageModelInput] = [
        f"Question {i}: how do plants grow?" for i in range(requests)
    ]
    t0 = time.perf_counter()
    await model.abatch(prompts, config={"max_concurrency": concurrency})
    seconds = time.perf_counter() - t0
    ideal = requests / (-(-requests // concurrency) * latency) if requests else 0.0
    return requests / seconds, ideal

"""The methods the benchmark compares, all at the same response-call budget."""

from __future__ import annotations

from dataclasses import dataclass

from hia_chain.search.types import FilterName, SearchName

__all__ = ["METHODS", "Method"]


@dataclass(frozen=True)
class Method:
    """A search strategy plus the stage-1 filter (and heuristic) it uses."""

    name: str
    search: SearchName
    filter: FilterName
    heuristic: str | None = None
    """``learned`` (online from a cold start, no drafter: the realistic black-box case),
    ``warm`` (the same, warm-started from ``hia-chain calibrate`` on the package's own
    calibration prompts), ``draft`` (the local model drafts; here it shares weights with the
    response model), or ``instruction``."""


METHODS: tuple[Method, ...] = (
    Method("best-of-n", "sample", "order"),
    Method("bon-unfiltered", "bon", "random"),
    Method("greedy-unfiltered", "greedy", "random"),
    Method("beam-unfiltered", "beam", "random"),
    Method("hia-bon[learned]", "bon", "heuristic", "learned"),
    Method("hia-greedy[learned]", "greedy", "heuristic", "learned"),
    Method("hia-beam[learned]", "beam", "heuristic", "learned"),
    Method("hia-bon[instruction]", "bon", "heuristic", "instruction"),
    Method("hia-bon[draft]", "bon", "heuristic", "draft"),
    Method("hia-bon[warm]", "bon", "heuristic", "warm"),
    Method("hia-greedy[warm]", "greedy", "heuristic", "warm"),
    Method("hia-beam[warm]", "beam", "heuristic", "warm"),
)

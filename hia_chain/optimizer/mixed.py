"""Combine optimizers: each proposes, proposals are interleaved and de-duplicated.

The CLI default mixes a small local model's rewrites with the template composer: a 135M model
alone rewrites poorly, the composer alone never explores beyond its phrase bank.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from hia_chain.context import RunContext
from hia_chain.errors import ConfigError
from hia_chain.optimizer.base import OptimizeRequest, PromptOptimizer, Proposal

__all__ = ["MixedOptimizer"]


class MixedOptimizer(PromptOptimizer):
    """Round-robin over several optimizers' proposals, run concurrently."""

    def __init__(self, optimizers: Sequence[PromptOptimizer]) -> None:
        if not optimizers:
            raise ConfigError("`MixedOptimizer` needs at least one optimizer.")
        self.optimizers = tuple(optimizers)
        self.model_calls_per_round = sum(o.model_calls_per_round for o in self.optimizers)

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        results: list[list[Proposal]] = [[] for _ in self.optimizers]

        async def run(i: int, opt: PromptOptimizer) -> None:
            results[i] = await opt.apropose(request, context)

        async with anyio.create_task_group() as tg:
            for i, opt in enumerate(self.optimizers):
                tg.start_soon(run, i, opt)
        out: list[Proposal] = []
        seen: set[tuple[str, str | None, int | None]] = set()
        for row in range(max(map(len, results))):
            for proposals in results:
                if row >= len(proposals):
                    continue
                p = proposals[row]
                if (key := (p.prompt, p.system, p.max_tokens)) not in seen:
                    seen.add(key)
                    out.append(p)
        return out[: request.n]

"""The draft heuristic: a cheap local model answers each candidate prompt, and the reference
scorers grade those drafts.

This is the most direct r̂(c) there is: it runs the candidate the way the expensive model
would, only smaller and shorter. Its costs are real, so they are budgeted under the
``"draft"`` role, and its known bias is stated rather than hidden: drafts are cut at
``max_tokens``, so a truncated draft *under*-estimates length-driven objectives such as
verbosity. Truncated drafts are flagged and get a high uncertainty instead of a made-up
correction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import anyio
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage

from hia_chain.calls import bound_for, call_model
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers.base import Heuristic, Prediction, ReferenceScorer, score_responses
from hia_chain.scorers.text import BUILTIN_OBJECTIVES

__all__ = ["DraftHeuristic"]

_LENGTH_REASONS = frozenset({"length", "max_tokens", "max_output_tokens", "MAX_TOKENS"})


def is_truncated(message: AIMessage, max_tokens: int | None) -> bool:
    """Whether a reply stopped at its token cap (OpenAI, Anthropic, Ollama, Gemini spellings)."""
    meta = message.response_metadata or {}
    for key in ("finish_reason", "stop_reason", "done_reason"):
        if meta.get(key) in _LENGTH_REASONS:
            return True
    usage = message.usage_metadata
    return bool(usage and max_tokens is not None and usage["output_tokens"] >= max_tokens)


class DraftHeuristic(Heuristic):
    """Predicts a candidate's scores by drafting a short answer to it with a small model.

    Each distinct candidate is drafted once, in one ``drafter.abatch`` call, and each draft is
    scored by ``scorers`` against the ORIGINAL prompt (what the user asked, as stage 2 does).
    The draft follows the candidate prompt as the real model would: nothing asks it to be
    short; only ``max_tokens`` limits it.

    Budget: with a ``context``, every draft reserves one ``"draft"`` call before the batch is
    sent and is settled with its reply's ``usage_metadata``. When the draft budget cannot pay
    for every candidate, the first ones (the optimizer's order; the original comes first) are
    drafted and the rest (and any draft a judge's budget could not grade) get the mean of the
    drafted predictions with an uncertainty of half the scale, so the search can still rank
    them but knows it is guessing. With no draft affordable at all, every candidate gets the
    scale midpoint with that uncertainty.

    Uncertainty (std-dev, as a share of each objective's span): ``draft_std`` for a complete
    draft; ``2 * draft_std`` for a draft cut at ``max_tokens`` (``finish_reason`` "length" or
    ``output_tokens >= max_tokens``), whose verbosity is a lower bound; 0.5 for undrafted ones.

    Args:
        drafter: A small chat model (the embedded one by default). It is called with
            ``max_tokens`` bound as a call argument, so it must accept one (ChatOpenAI,
            ChatAnthropic and hia_chain's local chat model do).
        scorers: Reference scorers that together cover every objective to be predicted.
        max_tokens: Output cap per draft; ``None`` binds nothing and leaves drafts unbounded
            (then no token/cost cap can apply to the draft role).
        objectives: Scales of the objectives (default: the built-in ones, else 0–4).
        draft_std: Uncertainty of a complete draft's prediction, as a share of the span.
        max_concurrency: Passed to ``abatch`` as the most drafts in flight.

    Raises:
        ConfigError: no scorers, or bad ``max_tokens``/``draft_std``/``max_concurrency``.
    """

    name = "draft"
    model_calls_per_item = 1

    def __init__(
        self,
        drafter: BaseChatModel,
        scorers: Sequence[ReferenceScorer],
        max_tokens: int | None = 64,
        *,
        objectives: Sequence[Objective] = (),
        draft_std: float = 0.125,
        max_concurrency: int | None = None,
    ) -> None:
        if not scorers:
            raise ConfigError(
                "`scorers` is empty: give DraftHeuristic reference scorers to grade drafts."
            )
        if max_tokens is not None and max_tokens < 1:
            msg = f"`max_tokens` must be >= 1 or None, got {max_tokens}."
            raise ConfigError(msg)
        if not (0 < draft_std <= 0.5 and math.isfinite(draft_std)):
            msg = f"`draft_std` is a share of the scale span in (0, 0.5], got {draft_std}."
            raise ConfigError(msg)
        if max_concurrency is not None and max_concurrency < 1:
            msg = f"`max_concurrency` must be >= 1 or None, got {max_concurrency}."
            raise ConfigError(msg)
        self.drafter = drafter
        self.scorers = tuple(scorers)
        self.max_tokens = max_tokens
        self.objectives = {o.name: o for o in objectives}
        self.draft_std = draft_std
        self.max_concurrency = max_concurrency

    def _scale(self, name: str) -> tuple[float, float]:
        obj = self.objectives.get(name) or BUILTIN_OBJECTIVES.get(name)
        if obj is not None:
            return obj.low, obj.high
        for scorer in self.scorers:
            low, high = getattr(scorer, "low", None), getattr(scorer, "high", None)
            if name in scorer.objectives and isinstance(low, float) and isinstance(high, float):
                return low, high
        return 0.0, 4.0

    async def _draft(
        self, prompts: Sequence[str], context: RunContext | None
    ) -> list[AIMessage | None]:
        """Draft ``prompts`` concurrently, each through the one call path; ``None`` where the
        draft budget refused. Calls start in order, so a cap drafts the first ones.

        Raises:
            Exception: a drafter error, once every other draft has settled.
        """
        context = context or RunContext()
        model: Any = self.drafter
        if self.max_tokens is not None:
            model = model.bind(max_tokens=self.max_tokens)
        limiter = anyio.CapacityLimiter(self.max_concurrency or max(1, len(prompts)))
        replies: list[AIMessage | None] = [None] * len(prompts)
        errors: list[BaseException] = []

        async def one(i: int, prompt: str) -> None:
            async with limiter:
                try:
                    reply = await call_model(
                        context, "draft", model, prompt, bound=bound_for(prompt, self.max_tokens)
                    )
                except BudgetExceededError:
                    return
                except Exception as exc:
                    errors.append(exc)
                    return
            if not isinstance(reply, AIMessage):
                msg = f"DraftHeuristic: the drafter returned {type(reply).__name__}, not an AIMessage."
                errors.append(RewardModelError(msg))
                return
            replies[i] = reply

        async with anyio.create_task_group() as tg:
            for i, prompt in enumerate(prompts):
                tg.start_soon(one, i, prompt)
        if errors:
            raise errors[0]
        return replies

    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        """Draft each distinct candidate (as far as the draft budget allows) and score the drafts.

        Raises:
            ConfigError: an objective no scorer produces, or a token cap with ``max_tokens=None``.
            RewardModelError: a scorer's output is invalid.
            Exception: the drafter's own error, after its reservations are settled.
        """
        names = list(objectives)
        covered = {n for s in self.scorers for n in s.objectives}
        missing = [n for n in names if n not in covered]
        if missing:
            have = sorted(covered)
            msg = f"DraftHeuristic has no scorer for objective(s) {missing}; its scorers produce {have}. Add a scorer for them."
            raise ConfigError(msg)
        requested = list(dict.fromkeys(candidates))
        drafted = [
            (p, r)
            for p, r in zip(requested, await self._draft(requested, context), strict=True)
            if r is not None
        ]
        scored = await score_responses(
            self.scorers, original, [r.text for _, r in drafted], names, context
        )
        spans = {n: self._scale(n) for n in names}
        by_prompt: dict[str, Prediction] = {}
        rows = []
        for (prompt, reply), scores in zip(drafted, scored.rows, strict=True):
            if scores is None:  # a judge's budget ran out before it graded this draft
                continue
            rows.append(scores)
            factor = 2.0 if is_truncated(reply, self.max_tokens) else 1.0
            unc = {n: factor * self.draft_std * (spans[n][1] - spans[n][0]) for n in names}
            by_prompt[prompt] = Prediction(scores=scores, uncertainty=unc)
        if rows:
            fill = {n: sum(row[n] for row in rows) / len(rows) for n in names}
        else:
            fill = {n: (lo + hi) / 2 for n, (lo, hi) in spans.items()}
        guess = Prediction(
            scores=fill, uncertainty={n: 0.5 * (hi - lo) for n, (lo, hi) in spans.items()}
        )
        return [by_prompt.get(c, guess) for c in candidates]

"""Stage 2, budgeted: send the survivors to the response model concurrently and measure.

Each attempt (first try or retry) reserves one response call from the request's budget
before it is made, so retries can never overspend. Transient errors are retried; other
errors are raised unchanged. Responses are scored against the ORIGINAL prompt, since that is
what the user asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from hia_chain._retry import is_transient, retrying
from hia_chain.budget import Budget
from hia_chain.context import RunContext, estimate_tokens
from hia_chain.errors import BudgetExceededError
from hia_chain.goals import RewardFunction, validate_scores
from hia_chain.scorers.base import ReferenceScorer, check_batch
from hia_chain.search.types import Candidate, Responder, SearchSettings

__all__ = ["SendOutcome", "measure", "pool_can_pay", "send"]


async def _send_one(
    c: Candidate, respond: Responder, settings: SearchSettings, context: RunContext
) -> None:
    """Send one candidate, retrying transient errors while the budget can pay for it.

    Raises:
        BudgetExceededError: not even the first attempt could be paid for.
        Exception: the response model's error, unchanged (the last one, after retries).
    """
    bound = estimate_tokens(c.prompt, settings.max_tokens, context.fixed_input_chars)
    last: BaseException | None = None
    async for attempt in retrying(settings.max_retries):
        with attempt:
            try:
                async with context.budget.spend("response", tokens=bound) as reservation:
                    c.sent = True
                    c.attempts += 1
                    response = await respond(c.prompt)
                    context.budget.settle(
                        reservation, response.input_tokens, response.output_tokens
                    )
            except BudgetExceededError:
                if last is None:
                    raise
                break  # no budget left to retry: report the provider's error below
            except Exception as exc:
                last = exc
                raise
            c.response = response
            return
    if last is not None:
        raise last


def pool_can_pay(budget: Budget, tokens: int | None) -> bool:
    """Whether the shared pool above ``budget`` (if any) could pay for one more call now."""
    if budget.parent is None:
        return True
    probe = budget.parent.try_reserve("response", tokens=tokens)
    if probe is None:
        return False
    budget.parent.release(probe)
    return True


@dataclass
class SendOutcome:
    """What a round of calls ran into besides answers."""

    exhausted: bool = False
    """A planned call could not be reserved: a shared budget ran out."""
    failures: list[BaseException] = field(default_factory=list)
    """Transient errors that outlived their retries, in order."""


async def send(
    batch: Sequence[Candidate],
    respond: Responder,
    settings: SearchSettings,
    context: RunContext,
) -> SendOutcome:
    """Send every candidate concurrently.

    Raises:
        Exception: the first non-transient error of the response model, unchanged.
    """
    limiter = anyio.CapacityLimiter(settings.max_concurrency)
    fatal: list[BaseException] = []
    outcome = SendOutcome()

    async def run(c: Candidate) -> None:
        async with limiter:
            try:
                await _send_one(c, respond, settings, context)
            except BudgetExceededError as exc:
                # Only a shared pool refusing is "exhausted"; the request's own cap being
                # used up (e.g. by retries of other candidates) is the plan working.
                bound = estimate_tokens(c.prompt, settings.max_tokens, context.fixed_input_chars)
                outcome.exhausted |= not pool_can_pay(context.budget, bound)
                c.error = f"BudgetExceededError: {exc}"
            except Exception as exc:
                c.error = f"{type(exc).__name__}: {exc}"
                if is_transient(exc):
                    outcome.failures.append(exc)
                else:
                    fatal.append(exc)
                    tg.cancel_scope.cancel()
            else:
                await context.event("hia_response", {"candidate": c.id, "attempts": c.attempts})

    async with anyio.create_task_group() as tg:
        for c in batch:
            tg.start_soon(run, c)
    if fatal:
        raise fatal[0]
    return outcome


async def measure(
    original: str,
    batch: Sequence[Candidate],
    scorers: Sequence[ReferenceScorer],
    goal: dict[str, float],
    reward: RewardFunction,
    context: RunContext,
) -> str | None:
    """Score the answered candidates with every reference scorer and compute R(G, r).

    Returns why scoring stopped short (a judge's own budget ran out), else ``None``; the
    candidates every scorer did grade are measured either way.
    """
    done = [c for c in batch if c.response is not None]
    if not done:
        return None
    texts = [c.response.text for c in done if c.response is not None]
    merged: list[dict[str, float] | None] = [{} for _ in done]
    stopped = None
    for scorer in scorers:
        wanted = [n for n in scorer.objectives if n in goal]
        if not wanted:
            continue
        source = type(scorer).__name__
        try:
            results: list[Any] = check_batch(
                await scorer.ascore(original, texts, context), len(done), wanted, source=source
            )
        except BudgetExceededError as exc:
            stopped = str(exc)
            results = exc.partial or [None] * len(done)
        for i, scores in enumerate(results):
            row = merged[i]
            if row is not None and scores is not None:
                row.update(validate_scores(scores, wanted, source=source))
            else:
                merged[i] = None  # one scorer could not grade it: not measured
    for c, scores in zip(done, merged, strict=True):
        if scores is not None:
            c.measured = scores
            c.reward = reward(goal, scores)
    return stopped

"""Stage 2, budgeted: send the survivors to the response model concurrently and measure.

Every attempt goes through the one call path (:func:`hia_chain.calls.call`): reserved before
it is made, charged by what the provider saw, retried on transient errors while the budget
can pay. A call that fails for good is recorded on its candidate and the round goes on with
the answers it did get; an empty answer is a failed candidate too (kept, flagged, never
chosen over a non-empty one). Responses are scored against the ORIGINAL prompt, since that is
what the user asked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from hia_chain.budget import BaseBudget
from hia_chain.calls import TokenBound, bound_for, call
from hia_chain.context import RunContext, text_bytes
from hia_chain.errors import BudgetExceededError
from hia_chain.goals import RewardFunction
from hia_chain.retry import is_transient
from hia_chain.scorers import ReferenceScorer, score_responses
from hia_chain.search.types import Candidate, Request, Responder, Response, SearchSettings

__all__ = ["SendOutcome", "can_pay", "measure", "pool_can_pay", "response_bound", "send"]


_SYSTEM_MESSAGE_CHARS = 16
"""Allowance for a system message's own framing (as for every other message sent)."""


def response_bound(
    request: Request, settings: SearchSettings, context: RunContext
) -> TokenBound | None:
    """Token bounds of one response call sending ``request``: its prompt, its system
    instruction and everything else sent; its own output cap, else the request's.
    ``None`` when output is unbounded."""
    extra = context.fixed_input_chars
    if request.system is not None:
        extra += text_bytes(request.system) + _SYSTEM_MESSAGE_CHARS
    cap = settings.max_tokens if request.max_tokens is None else request.max_tokens
    return bound_for(request.prompt, cap, extra)


async def _send_one(
    c: Candidate, respond: Responder, settings: SearchSettings, context: RunContext
) -> None:
    """Send one candidate, retrying transient errors while the budget can pay for it.

    Raises:
        BudgetExceededError: not even the first attempt could be paid for.
        Exception: the response model's error, unchanged (the last one, after retries).
    """

    async def one() -> Response:
        return await respond(c.request)

    c.response = await call(
        context,
        "response",
        one,
        bound=response_bound(c.request, settings, context),
        retries=settings.max_retries,
        usage=lambda r: (r.input_tokens, r.output_tokens),
        record=c.record_attempt,
    )
    if not c.response.text.strip():
        c.empty = True
        c.error = "EmptyAnswer: the response model returned no text."


async def can_pay(budget: BaseBudget, bound: TokenBound | None) -> bool:
    """Whether ``budget`` could pay for one more response call now (reserved, given back)."""
    probe = await budget.areserve(
        "response",
        tokens=None if bound is None else bound.total,
        output_tokens=None if bound is None else bound.output,
    )
    if probe is None:
        return False
    await budget.arelease(probe)
    return True


async def pool_can_pay(budget: BaseBudget, bound: TokenBound | None) -> bool:
    """Whether the shared pool above ``budget`` (if any) could pay for one more call now."""
    return budget.parent is None or await can_pay(budget.parent, bound)


@dataclass
class SendOutcome:
    """What a round of calls ran into besides answers."""

    exhausted: bool = False
    """A planned call could not be reserved: a shared budget ran out."""
    failures: list[BaseException] = field(default_factory=list)
    """Transient errors that outlived their retries, in order."""
    errors: list[BaseException] = field(default_factory=list)
    """Non-transient errors, in order; the search goes on without those candidates."""


async def send(
    batch: Sequence[Candidate],
    respond: Responder,
    settings: SearchSettings,
    context: RunContext,
) -> SendOutcome:
    """Send every candidate concurrently; failures are recorded on their candidates."""
    limiter = anyio.CapacityLimiter(settings.max_concurrency)
    outcome = SendOutcome()

    async def run(c: Candidate) -> None:
        async with limiter:
            try:
                await _send_one(c, respond, settings, context)
            except BudgetExceededError as exc:
                # Only a shared pool refusing is "exhausted"; the request's own cap being
                # used up (e.g. by retries of other candidates) is the plan working.
                bound = response_bound(c.request, settings, context)
                outcome.exhausted |= not await pool_can_pay(context.budget, bound)
                c.error = f"BudgetExceededError: {exc}"
            except Exception as exc:
                c.error = f"{type(exc).__name__}: {exc}"
                (outcome.failures if is_transient(exc) else outcome.errors).append(exc)
            else:
                await context.event(
                    "hia_response", {"candidate": c.id, "attempts": c.attempts, "empty": c.empty}
                )

    async with anyio.create_task_group() as tg:
        for c in batch:
            tg.start_soon(run, c)
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
    scored = await score_responses(scorers, original, texts, goal, context)
    for c, scores in zip(done, scored.rows, strict=True):
        if scores is not None:
            c.measured = scores
            c.reward = reward(goal, scores)
    return scored.stopped

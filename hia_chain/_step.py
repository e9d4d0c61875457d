"""Agent steps: the ``final`` policy (one call first, then align a text answer), which cap a
step drew from, and the flagged answer of a step the run's budget cannot pay for.

The step's first call sends the conversation as is. An answer that calls a tool is the
step's answer at one call. A text answer is the agent's final answer: it becomes the
original prompt's candidate (measured like any other), and the search spends the rest of
the step's budget on rewrites. Every call of the step, the first included, is reserved from
one per-step budget whose parent is the run's (or the shared) pool. The search's own
first round may send the original prompt again: with sampling that is a second, independent
sample (candidates bypass the LLM cache), not a repeat.
"""

from __future__ import annotations

import dataclasses
import time

from langchain_core.runnables import RunnableConfig

from hia_chain.agents import ThreadBudgets
from hia_chain.budget import ROLES, BaseBudget, Budget
from hia_chain.calls import bound_for, call
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError
from hia_chain.goals import get_reward_function, validate_goal
from hia_chain.search import (
    HIASearch,
    Request,
    Responder,
    Response,
    SearchResult,
    SearchSettings,
    stage2,
)
from hia_chain.search.engine import choice_key
from hia_chain.search.strategies import StopReason
from hia_chain.search.types import Candidate

__all__ = ["budget_scope", "exhausted_step", "first_call_step"]


async def first_call_step(
    search: HIASearch,
    prompt: str,
    goal: dict[str, float],
    respond: Responder,
    settings: SearchSettings,
    *,
    pool: BaseBudget | None,
    context: RunContext,
    align: bool,
) -> tuple[SearchResult, str]:
    """Answer one step: a tool call (or, unless ``align``, any answer) at one call, else
    the best aligned answer within ``settings.budget`` calls in all.

    Returns:
        The step's search result and what the step was: ``tool_call``, ``passed`` or
        ``answer``.

    Raises:
        BudgetExceededError: the budget cannot pay for the first call.
        Exception: the response model's error on the first call, unchanged.
    """
    goal = validate_goal(search.objectives, goal)
    reward = get_reward_function(settings.reward, search.objectives)
    step = Budget(calls=settings.budget, parent=pool)
    context.budget = step
    context.timeout = settings.timeout
    start = time.monotonic()
    if settings.deadline is not None:
        context.deadline = start + settings.deadline
    first = Candidate(id=0, prompt=prompt, origin="original", round=0)

    async def once() -> Response:
        return await respond(Request(prompt))

    response: Response = await call(
        context,
        "response",
        once,
        bound=bound_for(prompt, settings.max_tokens, context.fixed_input_chars),
        retries=settings.max_retries,
        usage=lambda r: (r.input_tokens, r.output_tokens),
        record=first.record_attempt,
    )
    first.response = response
    if getattr(response.message, "tool_calls", None) or not align:
        kind, why = ("tool_call", StopReason.TOOL_CALL) if align else ("passed", StopReason.PASSED)
        result = _result(first, [first], step, settings, goal, 0, False, why)
        await context.event("hia_done", {"best": 0, "reward": None, "calls": result.calls})
        return result, kind
    if not response.text.strip():
        first.empty = True
        first.error = "EmptyAnswer: the response model returned no text."

    candidates, rounds, exhausted = [first], 0, False
    stopped, detail = StopReason.BUDGET_SPENT, None
    left = None if settings.deadline is None else settings.deadline - (time.monotonic() - start)
    if settings.budget > 1 and (left is None or left > 0):
        rest = dataclasses.replace(settings, budget=settings.budget - 1, deadline=left)
        try:
            sub = await search.run(prompt, goal, respond, rest, shared=step, context=context)
        except BudgetExceededError as exc:  # the pool could not pay for one more call
            exhausted, stopped, detail = True, StopReason.BUDGET_EXHAUSTED, str(exc)
        else:
            for c in sub.candidates:
                c.id += 1
            candidates += sub.candidates
            rounds, exhausted = sub.rounds, sub.budget_exhausted
            stopped, detail = sub.stopped, sub.stop_detail
    elif settings.budget > 1:
        stopped = StopReason.DEADLINE
    context.budget = step
    judged_short = await stage2.measure(prompt, [first], search.scorers, goal, reward, context)
    if judged_short:
        exhausted, stopped, detail = True, StopReason.REFUSED, judged_short
    if first.measured is not None and search.heuristic is not None:
        search.heuristic.observe(prompt, prompt, first.measured)
    measured = [c for c in candidates if c.measured is not None]
    best = max(measured, key=lambda c: choice_key(c, reward, goal)) if measured else first
    result = _result(best, candidates, step, settings, goal, rounds, exhausted, stopped, detail)
    return result, "answer"


def _result(
    best: Candidate,
    candidates: list[Candidate],
    step: Budget,
    settings: SearchSettings,
    goal: dict[str, float],
    rounds: int,
    exhausted: bool,
    stopped: StopReason,
    detail: str | None = None,
) -> SearchResult:
    return SearchResult(
        best=best,
        candidates=candidates,
        settings=settings,
        goal=goal,
        usage={role: step.usage(role).as_dict() for role in ROLES},
        rounds=rounds,
        budget_exhausted=exhausted,
        stopped=stopped,
        stop_detail=detail,
    )


def budget_scope(
    config: RunnableConfig | None,
    agent_budget: BaseBudget | ThreadBudgets | None,
    shared: BaseBudget | None,
) -> str:
    """Which cap an aligned call drew from, for the trace: the caller's per-run budget
    (``thread`` or ``run``), the model's shared pool, or the request's own."""
    given = ((config or {}).get("configurable") or {}).get("hia_budget", agent_budget)
    if isinstance(given, ThreadBudgets):
        return "thread"
    if given is not None:
        return "run"
    return "shared" if shared is not None else "request"


async def exhausted_step(
    prompt: str,
    goal: dict[str, float],
    settings: SearchSettings,
    context: RunContext,
    exc: BudgetExceededError,
) -> SearchResult:
    """The flagged, empty answer of a step the run's budget could not pay for."""
    usage: dict[str, dict[str, float | int]] = {
        role: (await context.budget.ausage(role)).as_dict() for role in ROLES
    }
    none = Candidate(id=0, prompt=prompt, origin="original", round=0)
    none.error = f"BudgetExceededError: {exc}"
    return SearchResult(
        best=none,
        candidates=[none],
        settings=settings,
        goal=goal,
        usage=usage,
        rounds=0,
        budget_exhausted=True,
        stopped=StopReason.BUDGET_EXHAUSTED,
    )

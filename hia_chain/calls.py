"""The one call path: every model call of every role is reserved, sent and settled here.

The response model (through the search's :data:`~hia_chain.search.types.Responder`), the
LLM optimizer, the LLM judge and the drafter all call :func:`call` (or :func:`call_model`),
so the rules below hold for each of them the same way:

* **Reserve first.** Each attempt (first try or retry) reserves one call of its role, with
  a token bound, before anything is sent; no reservation, no call.
* **Charge what the provider saw.** Reported usage → exactly that. An HTTP error status →
  the call and its input bound, no output. A request that never left the process (cancelled,
  timed out or refused a connection before its headers were written, as the instrumented
  transport of an OpenAI-compatible client tells; see :mod:`hia_chain._transport`) → given
  back. Anything else (a timeout or cancellation after sending, an unreadable reply, any
  failure of an opaque model once started) → the whole reserved bound.
* **Time-boxed.** Each attempt runs under the context's per-call ``timeout``, clipped to the
  request's ``deadline``; no retry starts that could not finish its wait before it.
* **Retries** of transient errors (see :mod:`hia_chain.retry`), honouring ``Retry-After``,
  each its own reservation. When the budget cannot pay for a retry, the provider's last
  error is raised, unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import anyio
from langchain_core.runnables import Runnable

from hia_chain import _transport
from hia_chain.budget import Reservation, Role, message_usage
from hia_chain.context import RunContext, estimate_tokens
from hia_chain.errors import BudgetExceededError
from hia_chain.retry import http_status, retry_after, retrying

__all__ = [
    "Outcome",
    "TokenBound",
    "attempt_state",
    "bound_for",
    "call",
    "call_model",
    "message_usage",
]

attempt_state = _transport.current
"""What the transport saw of the attempt running now (``None`` outside :func:`call`)."""

_T = TypeVar("_T")

Outcome = Literal["ok", "failed", "unknown", "released"]
"""How an attempt was settled: reported usage, an error status, at its bound, given back."""


@dataclass(frozen=True)
class TokenBound:
    """Upper bounds on one call's tokens: the input it sends and the output it may get."""

    input: int
    output: int

    @property
    def total(self) -> int:
        return self.input + self.output


def bound_for(text: str, max_tokens: int | None, extra_chars: int = 0) -> TokenBound | None:
    """Bounds of a call sending ``text`` (plus ``extra_chars`` of ASCII JSON) for at most
    ``max_tokens`` output tokens; ``None`` when output is unbounded."""
    total = estimate_tokens(text, max_tokens, extra_chars)
    if total is None or max_tokens is None:
        return None
    return TokenBound(input=total - max_tokens, output=max_tokens)


async def call(
    context: RunContext,
    role: Role,
    send: Callable[[], Awaitable[_T]],
    *,
    bound: TokenBound | None,
    retries: int = 0,
    usage: Callable[[_T], tuple[int | None, int | None]] = message_usage,
    record: Callable[[Outcome, BaseException | None], None] | None = None,
) -> _T:
    """Make one call of ``role`` through ``send``, with retries, paid from ``context.budget``.

    Args:
        context: The request's budget, timeouts and deadline.
        role: The budget role the call counts against.
        send: Makes one attempt (e.g. ``lambda: context.ainvoke(model, input, "judge")``).
        bound: Token bounds reserved per attempt (``None``: no output bound is known, allowed
            only where no token or cost cap applies).
        retries: Further attempts after transient errors.
        usage: Reads the reported (input, output) tokens from a result.
        record: Told each attempt's outcome (and its error), e.g. to count calls per candidate.

    Raises:
        BudgetExceededError: the budget could not pay for the first attempt.
        TimeoutError: the last attempt outlived the per-call timeout or the deadline.
        Exception: the model's last error, unchanged.
    """
    last: BaseException | None = None
    deadline = context.deadline
    if deadline is not None and time.monotonic() >= deadline:
        msg = f"The request's deadline passed before this {role!r} call could start."
        raise TimeoutError(msg)
    async for attempt in retrying(retries, deadline=deadline, clock=time.monotonic):
        with attempt:
            await _wait_if_told(context)
            reservation = await context.budget.areserve(
                role,
                tokens=None if bound is None else bound.total,
                output_tokens=None if bound is None else bound.output,
            )
            if reservation is None:
                if last is not None:
                    break  # no budget left to retry: report the provider's error below
                msg = f"The {role!r} budget cannot pay for another call."
                raise BudgetExceededError(msg)
            try:
                result = await _attempt(context, reservation, send, usage, record)
            except BaseException as exc:
                last = exc
                raise
            return result
    assert last is not None  # noqa: S101 - the loop either returned, raised or broke after an error
    raise last


async def _wait_if_told(context: RunContext) -> None:
    """Wait out a provider's ``Retry-After``, or re-raise its error if the deadline is sooner."""
    wait = context.not_before - time.monotonic()
    if wait <= 0:
        return
    if context.deadline is not None and context.not_before >= context.deadline:
        assert context.told_to_wait is not None  # noqa: S101 - set together with not_before
        raise context.told_to_wait
    await anyio.sleep(wait)


async def _attempt(
    context: RunContext,
    reservation: Reservation,
    send: Callable[[], Awaitable[_T]],
    usage: Callable[[_T], tuple[int | None, int | None]],
    record: Callable[[Outcome, BaseException | None], None] | None,
) -> _T:
    budget = context.budget
    outcome: Outcome
    timeout = context.call_timeout()
    with _transport.tracking() as state:
        try:
            with anyio.fail_after(timeout):
                result = await send()
        except BaseException as exc:
            hint = retry_after(exc) if isinstance(exc, Exception) else None
            if hint:
                until = time.monotonic() + hint
                if until > context.not_before:
                    context.not_before, context.told_to_wait = until, exc
            status = http_status(exc)
            if not state.may_have_reached:
                outcome = "released"
                await budget.arelease(reservation)
            elif status is not None and status >= 400:
                outcome = "failed"
                await budget.asettle_failed(reservation)
            else:
                outcome = "unknown"
                await budget.asettle(reservation)
            if record is not None:
                record(outcome, exc)
            if isinstance(exc, TimeoutError) and not str(exc) and timeout is not None:
                msg = f"The call took longer than its timeout of {timeout:g} s."
                raise TimeoutError(msg) from exc
            raise
    try:
        counts = usage(result)
    except BaseException:
        await budget.asettle(reservation)  # made, but its usage cannot be read: the bound
        raise
    await budget.asettle(reservation, *counts)
    if record is not None:
        record("ok", None)
    return result


async def call_model(
    context: RunContext,
    role: Role,
    model: Runnable[Any, Any],
    input: Any,
    *,
    bound: TokenBound | None,
    retries: int = 0,
    **kwargs: Any,
) -> Any:
    """:func:`call` for a LangChain model: a child run tagged ``hia:<role>``."""

    async def send() -> Any:
        return await context.ainvoke(model, input, role, **kwargs)

    return await call(context, role, send, bound=bound, retries=retries)

"""A request without ``hia``: one upstream call, still reserved in the key's pool and settled
with the usage the upstream reported.

The non-streamed call goes through the package's one call path
(:func:`hia_chain.calls.call`). The streamed one reserves, opens the upstream stream and
reads its first chunk *before* the client's response starts, so a refused budget is a 429
and an unreachable upstream a 502 with the right status, not an error inside a 200 stream.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import openai

from hia_chain.budget import BaseBudget, Budget, Reservation, completion_usage
from hia_chain.calls import bound_for, call
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError
from hia_chain.server.upstream import Upstream

__all__ = ["StreamedCall", "complete_once"]


def _bound(body: dict[str, Any], max_tokens: int | None) -> Any:
    return bound_for(json.dumps(body.get("messages", [])), max_tokens, len(json.dumps(body)))


async def complete_once(
    upstream: Upstream,
    body: dict[str, Any],
    pool: BaseBudget | None,
    *,
    timeout: float,
    max_tokens: int | None,
) -> dict[str, Any]:
    """One call for ``body``, paid from ``pool``.

    Raises:
        BudgetExceededError: the pool cannot pay for it (nothing was sent).
    """
    context = RunContext(budget=Budget(calls=1, parent=pool), timeout=timeout)
    return await call(
        context,
        "response",
        lambda: upstream.complete(body),
        bound=_bound(body, max_tokens),
        usage=completion_usage,
    )


class StreamedCall:
    """One streamed upstream call: :meth:`open` reserves and starts it, iteration relays it."""

    def __init__(
        self,
        upstream: Upstream,
        body: dict[str, Any],
        pool: BaseBudget | None,
        *,
        timeout: float,
        max_tokens: int | None,
    ) -> None:
        self.upstream = upstream
        self.wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        self.body = {
            **body,
            "stream_options": {**(body.get("stream_options") or {}), "include_usage": True},
        }
        self.budget = Budget(calls=1, parent=pool)
        self.timeout = timeout
        self.bound = _bound(body, max_tokens)
        self.usage: tuple[int | None, int | None] = (None, None)
        self._reservation: Reservation | None = None
        self._chunks: AsyncIterator[dict[str, Any]] | None = None
        self._first: dict[str, Any] | None = None

    async def open(self) -> None:
        """Reserve the call and read the first chunk.

        Raises:
            BudgetExceededError: the pool cannot pay for it (nothing was sent).
            Exception: the upstream's error (the reservation is settled by the rules).
        """
        b = self.bound
        self._reservation = await self.budget.areserve(
            "response",
            tokens=None if b is None else b.total,
            output_tokens=None if b is None else b.output,
        )
        if self._reservation is None:
            raise BudgetExceededError("The 'response' budget cannot pay for another call.")
        self._chunks = self.upstream.stream(self.body).__aiter__()
        try:
            with anyio.fail_after(self.timeout):
                self._first = await self._chunks.__anext__()
        except StopAsyncIteration:
            self._first = None
        except BaseException as exc:
            await self._settle_error(exc)
            raise

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        assert self._chunks is not None  # noqa: S101 - open() first
        try:
            chunk = self._first
            while chunk is not None:
                relay = self._relay(chunk)
                if relay is not None:
                    yield relay
                try:
                    chunk = await self._chunks.__anext__()
                except StopAsyncIteration:
                    chunk = None
        except BaseException as exc:
            await self._settle_error(exc)
            raise
        r, self._reservation = self._reservation, None
        if r is not None:
            await self.budget.asettle(r, *self.usage)

    async def aclose(self) -> None:
        """Settle a call whose stream was never read to the end (the client left before the
        body started) at its bound, and close the upstream stream: a reservation must never
        outlive its response."""
        r, self._reservation = self._reservation, None
        with anyio.CancelScope(shield=True):
            if r is not None:
                await self.budget.asettle(r)  # unknown outcome: the request was sent
            close = getattr(self._chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()

    def _relay(self, chunk: dict[str, Any]) -> dict[str, Any] | None:
        if chunk.get("usage"):
            self.usage = completion_usage(chunk)
            if not self.wants_usage:
                if not chunk.get("choices"):
                    return None
                chunk = {k: v for k, v in chunk.items() if k != "usage"}
        return chunk

    async def _settle_error(self, exc: BaseException) -> None:
        r, self._reservation = self._reservation, None
        if r is None:
            return
        if isinstance(exc, openai.APIStatusError):
            await self.budget.asettle_failed(r)
        elif isinstance(exc, openai.APIConnectionError) and _never_connected(exc):
            await self.budget.arelease(r)
        else:
            await self.budget.asettle(r)  # it may have reached the provider: the whole bound


def _never_connected(exc: BaseException) -> bool:
    """The TCP connection was refused or never made: the request did not leave."""
    cause = exc.__cause__
    return cause is not None and type(cause).__name__ == "ConnectError"

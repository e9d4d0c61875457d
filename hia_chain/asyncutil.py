"""Running the package's async code from sync entry points.

Everything in hia_chain is async first; ``invoke``, local decoding and the CLI are sync. One
bridge serves them all, so the rule about running loops lives in one place: never re-enter a
running loop with ``run_until_complete`` (it raises under LangChain's ``ainvoke``, Jupyter
and any sync call made from async code).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = ["run_sync"]

T = TypeVar("T")


def run_sync(factory: Callable[[], Awaitable[T]]) -> T:
    """Run ``factory()`` to completion from sync code, with or without a running loop here.

    With no loop running in this thread, a fresh one runs it. With one running (a sync call
    made from async code, a notebook), a worker thread with its own loop runs it, with a copy
    of the caller's context variables (LangChain's run config travels in them), and this
    thread waits: the caller's loop is blocked either way, as any sync call blocks it.

    Args:
        factory: Makes the awaitable; called inside the loop that runs it.

    Returns:
        What the awaitable returns; its exception propagates unchanged.
    """

    async def main() -> T:
        return await factory()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(main)
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: context.run(anyio.run, main)).result()

"""The one sync bridge runs async code with or without a loop running in the caller's
thread, keeps the caller's context variables and lets errors through unchanged."""

from __future__ import annotations

import contextvars

import anyio
import pytest

from hia_chain.asyncutil import run_sync

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def _answer() -> str:
    await anyio.sleep(0)
    return f"answer for {REQUEST.get()}"


def test_runs_a_coroutine_when_no_loop_is_running() -> None:
    assert run_sync(_answer) == "answer for none"


async def test_runs_from_inside_a_running_loop_with_the_callers_context() -> None:
    REQUEST.set("req-7")
    assert run_sync(_answer) == "answer for req-7"


async def test_errors_pass_through_unchanged() -> None:
    async def fail() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError, match="missing"):
        run_sync(fail)

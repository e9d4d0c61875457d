"""What every pipeline stage receives besides its own inputs: the budget and the callbacks.

Stages that call a model (LLM optimizer, LLM judge, drafter) go through the one call path,
:func:`hia_chain.calls.call_model`, which reserves from ``budget`` under their role, sends
with :meth:`RunContext.ainvoke` (a child run tagged ``hia:<role>``, so the call shows in
LangChain tracing and in ``get_usage_metadata_callback``; the model's sync API when the request
came in through a sync entry point) and settles by what the provider saw.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence

from hia_chain import _transport
from hia_chain.budget import BaseBudget, Budget

__all__ = ["DEFAULT_TIMEOUT", "RunContext", "estimate_tokens", "text_bytes"]

DEFAULT_TIMEOUT = 120.0
"""Seconds one model call may take before it is abandoned (and retried if budget allows)."""


@dataclass
class RunContext:
    """Per-request state shared by the stages of one aligned call."""

    budget: BaseBudget = field(default_factory=Budget)
    """The request's budget (its parent, if any, is the shared pool)."""
    run_manager: AsyncCallbackManagerForChainRun | None = None
    """The chain run of the aligned call; children hang under it."""
    fixed_input_chars: int = 0
    """Characters every response call sends besides the candidate prompt (system prompt,
    history, tool schemas), so token bounds cover the whole request."""
    sync: bool = False
    """The request came through a sync entry point (``invoke``, ``batch``): language models
    are called with their sync API on a worker thread. The search itself runs in a throwaway
    event loop then, and provider SDKs bind their pooled async clients to the first loop that
    uses them (langchain-openai caches one per base URL), so their async API would fail on the
    next request with "Event loop is closed". Other Runnables (user functions, which may be
    async-only) keep their async API."""

    caller: RunnableConfig | None = None
    """The config the aligned model was invoked with (H-agents, issue 12)."""
    timeout: float | None = DEFAULT_TIMEOUT
    """Seconds one model call may take (``None``: no limit of ours)."""
    deadline: float | None = None
    """``time.monotonic()`` by which the request must be done; no call or retry starts after."""
    not_before: float = 0.0
    """``time.monotonic()`` before which no call starts: a provider's ``Retry-After`` holds
    for every call of the request, not only the retry of the call that got it."""
    told_to_wait: BaseException | None = None
    """The error that set ``not_before`` (raised again if the deadline comes first)."""

    def child_config(self, tag: str) -> RunnableConfig:
        """Config for a model call made by a stage, nested under the aligned call's run.

        The caller's ``configurable`` (so ``configurable_alternatives`` and
        ``configurable_fields`` on a wrapped model choose as the caller asked) and
        ``recursion_limit`` pass through; its ``run_name`` names the child runs
        (``<run_name>:<role>``). The ``nostream`` tag keeps every call of the search out of
        LangGraph's ``stream_mode="messages"``: only the chosen answer streams.
        """
        config: RunnableConfig = {"tags": [f"hia:{tag}", "nostream"]}
        caller = self.caller or {}
        if caller.get("configurable"):
            config["configurable"] = dict(caller["configurable"])
        if "recursion_limit" in caller:
            config["recursion_limit"] = caller["recursion_limit"]
        if caller.get("run_name"):
            config["run_name"] = f"{caller['run_name']}:{tag}"
        if self.run_manager is not None:
            config["callbacks"] = self.run_manager.get_child(f"hia:{tag}")
        return config

    def time_left(self) -> float | None:
        """Seconds until the deadline (``None``: no deadline)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def call_timeout(self) -> float | None:
        """The timeout of a call starting now: the per-call timeout, clipped to the deadline."""
        left = self.time_left()
        if left is None:
            return self.timeout
        left = max(0.0, left)
        return left if self.timeout is None else min(self.timeout, left)

    async def ainvoke(self, model: Runnable[Any, Any], input: Any, tag: str, **kwargs: Any) -> Any:
        """Call ``model`` as a child run tagged ``hia:<tag>``, sync or async like the request.

        OpenAI-compatible clients are called through an instrumented copy (see
        :mod:`hia_chain._transport`), so the call path knows whether the request was written.
        """
        config = self.child_config(tag)
        model = _transport.instrumented(model)
        _transport.mark_exact(model)
        if self.sync and _is_language_model(model):
            call = functools.partial(model.invoke, input, config, **kwargs)
            with _transport.in_thread():
                return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        return await model.ainvoke(input, config, **kwargs)

    async def event(self, name: str, data: dict[str, Any]) -> None:
        """Report progress as a LangChain custom event (shown by ``astream_events``)."""
        if self.run_manager is not None:
            await adispatch_custom_event(
                name, data, config={"callbacks": self.run_manager.get_child()}
            )


def _is_language_model(runnable: Runnable[Any, Any]) -> bool:
    """A (bound) language model, or a chain that ends in one (``prompt | llm``)."""
    while True:
        if isinstance(runnable, RunnableBinding):
            runnable = runnable.bound
        elif isinstance(runnable, RunnableSequence):
            runnable = runnable.last
        else:
            return isinstance(runnable, BaseLanguageModel)


_TEMPLATE_TOKENS = 64
"""Allowance for a chat template's special tokens around the messages."""


def text_bytes(text: str) -> int:
    """UTF-8 length of ``text``: a bound on its tokens for any byte-level tokenizer (each
    token covers at least one byte) and for SentencePiece with byte fallback."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def estimate_tokens(text: str, max_tokens: int | None, extra_chars: int = 0) -> int | None:
    """A safe upper bound on a call's tokens, for budgets with token or cost caps.

    Input tokens never exceed the prompt's UTF-8 bytes (never its characters: one Chinese
    character can be two tokens), plus ``extra_chars`` (ASCII JSON of everything else sent)
    and a chat-template overhead; output tokens never exceed ``max_tokens``. ``None`` when
    output is unbounded.
    """
    if max_tokens is None:
        return None
    return text_bytes(text) + extra_chars + _TEMPLATE_TOKENS + max_tokens

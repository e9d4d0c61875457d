"""What every pipeline stage receives besides its own inputs: the budget and the callbacks.

Stages that call a model (LLM optimizer, LLM judge, drafter) reserve from ``budget`` under
their own role and call it through :meth:`RunContext.ainvoke` / :meth:`RunContext.abatch`
with a tag, so their calls appear as child runs of the aligned call in LangChain tracing and
in ``get_usage_metadata_callback``, and use the model's sync API when the request came in
through a sync entry point.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, RunnableSequence

from hia_chain.budget import Budget

__all__ = ["RunContext", "estimate_tokens"]


@dataclass
class RunContext:
    """Per-request state shared by the stages of one aligned call."""

    budget: Budget
    """The request's budget (its parent, if any, is the shared pool)."""
    run_manager: AsyncCallbackManagerForChainRun | None = None
    """The chain run of the aligned call; children hang under it."""
    metadata: dict[str, Any] = field(default_factory=dict)
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

    def child_config(self, tag: str) -> RunnableConfig:
        """Config for a model call made by a stage, nested under the aligned call's run."""
        config: RunnableConfig = {"tags": [f"hia:{tag}"], "metadata": dict(self.metadata)}
        if self.run_manager is not None:
            config["callbacks"] = self.run_manager.get_child(f"hia:{tag}")
        return config

    async def ainvoke(self, model: Runnable[Any, Any], input: Any, tag: str, **kwargs: Any) -> Any:
        """Call ``model`` as a child run tagged ``hia:<tag>``, sync or async like the request."""
        config = self.child_config(tag)
        if self.sync and _is_language_model(model):
            call = functools.partial(model.invoke, input, config, **kwargs)
            return await anyio.to_thread.run_sync(call)
        return await model.ainvoke(input, config, **kwargs)

    async def abatch(
        self,
        model: Runnable[Any, Any],
        inputs: Sequence[Any],
        tag: str,
        *,
        max_concurrency: int | None = None,
    ) -> list[Any]:
        """``model.batch`` of ``inputs`` as child runs; errors are returned, not raised."""
        config = self.child_config(tag)
        if max_concurrency is not None:
            config["max_concurrency"] = max_concurrency
        if self.sync and _is_language_model(model):
            call = functools.partial(model.batch, list(inputs), config, return_exceptions=True)
            return await anyio.to_thread.run_sync(call)
        return await model.abatch(list(inputs), config, return_exceptions=True)

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


def estimate_tokens(text: str, max_tokens: int | None, extra_chars: int = 0) -> int | None:
    """A safe upper bound on a call's tokens, for budgets with token or cost caps.

    Input tokens never exceed characters for the BPE tokenizers in use, plus a chat-template
    overhead; output tokens never exceed ``max_tokens``. ``None`` when output is unbounded.
    """
    if max_tokens is None:
        return None
    return len(text) + extra_chars + 64 + max_tokens

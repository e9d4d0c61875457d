"""What every pipeline stage receives besides its own inputs: the budget and the callbacks.

Stages that call a model (LLM optimizer, LLM judge, drafter) reserve from ``budget`` under
their own role and pass ``child_config(tag)`` to the model, so their calls appear as child
runs of the aligned call in LangChain tracing and in ``get_usage_metadata_callback``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForChainRun, adispatch_custom_event
from langchain_core.runnables import RunnableConfig

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

    def child_config(self, tag: str) -> RunnableConfig:
        """Config for a model call made by a stage, nested under the aligned call's run."""
        config: RunnableConfig = {"tags": [f"hia:{tag}"], "metadata": dict(self.metadata)}
        if self.run_manager is not None:
            config["callbacks"] = self.run_manager.get_child(f"hia:{tag}")
        return config

    async def event(self, name: str, data: dict[str, Any]) -> None:
        """Report progress as a LangChain custom event (shown by ``astream_events``)."""
        if self.run_manager is not None:
            await adispatch_custom_event(
                name, data, config={"callbacks": self.run_manager.get_child()}
            )


def estimate_tokens(text: str, max_tokens: int | None) -> int | None:
    """A safe upper bound on a call's tokens, for budgets with token or cost caps.

    Input tokens never exceed characters for the BPE tokenizers in use, plus a chat-template
    overhead; output tokens never exceed ``max_tokens``. ``None`` when output is unbounded.
    """
    if max_tokens is None:
        return None
    return len(text) + 64 + max_tokens

"""BaseLocalChatModel: what the two local chat models share.

``LocalChatModel`` (plain batched generation) and ``IVGChatModel`` (value-guided decoding) both
run one set of local weights: the same fields for the weights and the common sampling
settings, the same lazy loading, the same LangSmith parameters and the same message shape.

Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata
from pydantic import ConfigDict, Field

__all__ = ["BaseLocalChatModel", "conversation", "usage"]

_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def conversation(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as chat-template dicts."""
    return [{"role": _ROLES.get(m.type, "user"), "content": m.text} for m in messages]


class BaseLocalChatModel(BaseChatModel):
    """A chat model over local weights: the embedded SmolLM2 by default, or any folder."""

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model_path: str | None = None
    """A transformers model folder; default: the embedded model (converted on first use)."""
    model_name: str = "SmolLM2-135M-Instruct"
    """The name reported in traces and response metadata."""
    temperature: float = 0.7
    """0 decodes greedily."""
    top_p: float = 1.0
    """Nucleus sampling: sample from the likeliest tokens whose probability reaches it."""
    max_tokens: int = 256
    """Cap on answer tokens."""
    stop: list[str] | None = None
    """Strings that end the answer (cut before them)."""
    seed: int | None = None
    """Seed of the call's own ``torch.Generator`` (never torch's global seed); None draws a
    fresh one per call."""
    hf_model: Any = Field(default=None, exclude=True)
    """An already-loaded model (tests inject tiny ones); loaded lazily otherwise."""
    tokenizer: Any = Field(default=None, exclude=True)
    """The model's tokenizer; loaded with the model otherwise. Never modified."""

    def load_weights(self) -> tuple[Any, Any]:
        """The model and tokenizer, loading the missing ones on first use.

        They come from ``model_path``, or from the embedded model, once per process: every
        chat model over the same folder shares them.

        Raises:
            LocalExtraMissingError: the ``[local]`` extra or the embedded model is missing.
        """
        if self.hf_model is None or self.tokenizer is None:
            from hia_chain.local.embedded import load_embedded

            model, tok = load_embedded(Path(self.model_path) if self.model_path else None)
            self.hf_model = model if self.hf_model is None else self.hf_model
            self.tokenizer = tok if self.tokenizer is None else self.tokenizer
        return self.hf_model, self.tokenizer

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider="hia_local",
            ls_model_name=self.model_name,
            ls_model_type="chat",
            ls_temperature=kwargs.get("temperature", self.temperature),
            ls_max_tokens=kwargs.get("max_tokens", self.max_tokens),
            ls_stop=stop or self.stop,
        )

    def _stop(self, stop: list[str] | None) -> tuple[str, ...]:
        """The call's stop strings, else the model's."""
        return tuple(stop or self.stop or ())

    def _response_metadata(self, finish_reason: str, **extra: Any) -> dict[str, Any]:
        """The response metadata of an answer: model, finish reason, provider and ``extra``."""
        return {
            "model_name": self.model_name,
            "finish_reason": finish_reason,
            "model_provider": "hia_local",
            **extra,
        }


def usage(input_tokens: int, output_tokens: int) -> UsageMetadata:
    """LangChain usage metadata from real token counts."""
    return UsageMetadata(
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        total_tokens=input_tokens + output_tokens,
    )

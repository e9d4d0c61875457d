"""The wire format: OpenAI's chat-completion request and response, plus the ``hia`` field.

Requests are validated here and forwarded as the client sent them (every OpenAI field this
model does not name still reaches the upstream, e.g. ``tools``, ``response_format``,
``logprobs``), minus ``hia``. Responses are OpenAI chat completions with one more top-level
field, ``hia``, the search's trace, which the SDKs keep (``completion.model_extra["hia"]`` in
Python, ``completion.hia`` in JavaScript).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hia_chain.goals import RewardName
from hia_chain.search.types import FilterName, SearchName

__all__ = [
    "ChatCompletion",
    "ChatCompletionRequest",
    "ChatMessage",
    "HIAOptions",
    "ModelCard",
    "ModelList",
    "Usage",
]


class HIAOptions(BaseModel):
    """Alignment settings of one request (``extra_body={"hia": {...}}`` in the SDKs).

    Unset fields take the server's defaults; the key may restrict ``budget`` and ``search``.
    """

    model_config = ConfigDict(extra="forbid")

    goal: dict[str, float] | None = None
    """Target per objective on its scale, e.g. ``{"verbosity": 1, "sentiment": 3}``."""
    budget: int | None = Field(None, ge=1)
    """Response-model calls for this request."""
    search: SearchName | None = None
    filter: FilterName | None = None
    reward: RewardName | None = None
    candidates_per_round: int | None = Field(None, ge=1, le=256)
    beam_width: int | None = Field(None, ge=1, le=64)
    exploration: float | None = Field(None, ge=0, le=10)
    deadline: float | None = Field(None, gt=0, le=3600)
    """Seconds the whole request may take; the best answer measured by then is returned."""
    trace: Literal["full", "summary"] = "full"
    """``full``: every candidate in ``hia.candidates``; ``summary``: without them."""


class ChatMessage(BaseModel):
    """One message; content stays as sent (text or content parts)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's ``POST /v1/chat/completions`` body; fields not named here pass through."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str | None = Field(None, max_length=256)
    """Keys this user's learned heuristic (within the API key) when the server runs with
    ``--heuristic learned``."""
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    n: int | None = Field(None, ge=1, le=128)
    seed: int | None = None
    hia: HIAOptions | None = None

    def output_bound(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class Usage(BaseModel):
    """Tokens summed over every response call the request made."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    """OpenAI's chat completion with the search's trace in ``hia``."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[dict[str, Any]]
    """The chosen answer's choice as the upstream returned it (tool calls and all)."""
    usage: Usage | None = None
    system_fingerprint: str | None = None
    hia: dict[str, Any] | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "hia-chain"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]

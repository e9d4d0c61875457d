"""``init_aligned_chat_model``: LangChain's ``init_chat_model`` plus the alignment settings.

One line from a ``"provider:model"`` string to an aligned model, the way LangChain users
already pick models (``init_chat_model("openai:gpt-4o-mini")``), so switching providers
keeps the goal, budget and search unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hia_chain.aligned import AlignedChatModel
from hia_chain.errors import ConfigError

__all__ = ["init_aligned_chat_model"]


def init_aligned_chat_model(
    model: str,
    *,
    model_provider: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    **settings: Any,
) -> AlignedChatModel:
    """An :class:`AlignedChatModel` over ``init_chat_model(model, ...)``.

    Args:
        model: ``"provider:model"`` (e.g. ``"openai:gpt-4o-mini"``) or a model name with
            ``model_provider``.
        model_provider: The provider, when ``model`` does not name it.
        model_kwargs: Keywords for the response model (``temperature``, ``base_url``,
            ``max_retries``, ...). Kept apart from the alignment settings because some names
            (``max_tokens``, ``timeout``, ``max_retries``) exist on both with different
            meanings.
        **settings: Alignment settings: ``goal``, ``budget``, ``search``, ``steps``,
            ``trace``, ``agent_budget``, ...

    Raises:
        ConfigError: ``langchain`` (which ships ``init_chat_model``) is not installed, or a
            setting is bad.
    """
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as exc:
        msg = (
            "init_aligned_chat_model needs LangChain's init_chat_model: "
            "`pip install langchain` (and the provider's package, e.g. langchain-openai)."
        )
        raise ConfigError(msg) from exc
    llm = init_chat_model(model, model_provider=model_provider, **dict(model_kwargs or {}))
    return AlignedChatModel(model=llm, **settings)

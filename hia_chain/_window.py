"""The response model's own bounds: refuse a prompt that cannot fit its context window, before
any call, and read the output bound it applies by itself.

Known only where the package holds the model's own tokenizer and config (the local chat
models: ``LocalChatModel``, ``IVGChatModel``); for any other model the provider says so itself,
as an error the search records.
"""

from __future__ import annotations

from typing import Any

import anyio
from langchain_core.runnables import Runnable, RunnableBinding

from hia_chain.errors import ConfigError

__all__ = ["check_fits", "own_max_tokens"]


def _window(hf_model: Any) -> int | None:
    """The context length in a transformers config, if it states one."""
    config = getattr(hf_model, "config", None)
    for attr in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _count(tokenizer: Any, text: str) -> int:
    try:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
        )
    except Exception:  # no chat template: the bare text
        ids = tokenizer(text)["input_ids"]
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


async def check_fits(model: Runnable[Any, Any], prompt: str, max_tokens: int | None) -> None:
    """Raise ``ConfigError`` when ``prompt`` plus ``max_tokens`` overflows the model's window.

    Runs on a worker thread: loading the model and tokenizing a long prompt block.

    Raises:
        ConfigError: the prompt is too long for the response model (names both sizes).
    """
    while isinstance(model, RunnableBinding):
        model = model.bound
    # a local chat model has `load_weights` (duck-typed: the core never imports hia_chain.local)
    load = getattr(model, "load_weights", None)
    if not callable(load):
        return  # the window is not known here: no thread hop for nothing

    def check() -> None:
        hf_model, tokenizer = load()  # loads the weights, as the model's first call would
        window = _window(hf_model)
        if window is None:
            return
        tokens = _count(tokenizer, prompt)
        room = window - (max_tokens or 0)
        if tokens > room:
            msg = (
                f"The prompt is {tokens} tokens; with max_tokens={max_tokens or 0} it does not "
                f"fit the response model's context window of {window} tokens: shorten the "
                f"prompt to under {max(0, room)} tokens or lower max_tokens."
            )
            raise ConfigError(msg)

    await anyio.to_thread.run_sync(check)


def own_max_tokens(model: Runnable[Any, Any]) -> int | None:
    """The output bound the response model applies by itself, if it has one: a bound
    ``max_tokens`` (``.bind(max_tokens=30)``; the outermost binding wins, as it does when
    called), else the model's own field. A candidate's cap is clipped to it, never above."""
    layer = model
    while isinstance(layer, RunnableBinding):
        for key in ("max_tokens", "max_completion_tokens"):
            if isinstance(layer.kwargs.get(key), int):
                return int(layer.kwargs[key])
        layer = layer.bound
    for key in ("max_tokens", "max_completion_tokens"):
        bound = getattr(layer, key, None)
        if isinstance(bound, int):
            return bound
    return None

"""The response model with LangChain's LLM cache off, so every candidate is a real sample.

With ``set_llm_cache`` on, candidates that send the same messages (``search="sample"``, a
re-sampled beam prompt, the agent step's first call) would all get the first one's cached
answer: best-of-N would compare N copies of one answer and the budget would count calls the
provider never saw. A copy with ``cache=False`` is made once per model object, through
``RunnableBinding`` layers (``bind_tools``) and configurable fields or alternatives.
"""

from __future__ import annotations

import threading
from typing import Any

from langchain_core.globals import get_llm_cache
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableBinding
from langchain_core.runnables.configurable import (
    RunnableConfigurableAlternatives,
    RunnableConfigurableFields,
)

__all__ = ["uncached"]

_COPIES: dict[int, tuple[Runnable[Any, Any], Runnable[Any, Any]]] = {}
_LOCK = threading.Lock()
_MAX = 256


def uncached(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """``model`` with every chat model inside it set to ``cache=False`` (cached per object);
    ``model`` itself when no cache applies (no global cache and none of its own)."""
    if not _caches(model):
        return model
    with _LOCK:
        hit = _COPIES.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
    made: Runnable[Any, Any] = _copy(model)
    with _LOCK:
        if len(_COPIES) >= _MAX:
            _COPIES.pop(next(iter(_COPIES)))
        _COPIES[id(model)] = (model, made)  # keeps `model` alive, so its id stays unique
    return made


def _caches(model: Any) -> bool:
    """Whether a chat model inside ``model`` would consult an LLM cache."""
    if isinstance(model, BaseChatModel):
        own = model.cache
        return own is not False and (own is not None or get_llm_cache() is not None)
    if isinstance(model, RunnableBinding):
        return _caches(model.bound)
    if isinstance(model, RunnableConfigurableAlternatives):
        others = [v for v in model.alternatives.values() if isinstance(v, Runnable)]
        return any(_caches(m) for m in (model.default, *others))
    if isinstance(model, RunnableConfigurableFields):
        return _caches(model.default)
    return False


def _copy(model: Any) -> Any:
    if isinstance(model, BaseChatModel):
        return model if model.cache is False else model.model_copy(update={"cache": False})
    if isinstance(model, RunnableBinding):
        inner = _copy(model.bound)
        return model if inner is model.bound else model.model_copy(update={"bound": inner})
    if isinstance(model, RunnableConfigurableFields):
        return model.model_copy(update={"default": _copy(model.default)})
    if isinstance(model, RunnableConfigurableAlternatives):
        alternatives = {
            k: _copy(v) if isinstance(v, Runnable) else v for k, v in model.alternatives.items()
        }
        return model.model_copy(
            update={"default": _copy(model.default), "alternatives": alternatives}
        )
    return model

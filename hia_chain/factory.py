"""Building models and heuristics from names: one home for the library, the CLI and the bench.

* :func:`init_aligned_chat_model`: LangChain's ``init_chat_model`` plus the alignment
  settings. One line from a ``"provider:model"`` string to an aligned model, the way
  LangChain users already pick models (``init_chat_model("openai:gpt-4o-mini")``), so
  switching providers keeps the goal, budget and search unchanged.
* :func:`response_model`: the response model the commands use: any OpenAI-compatible
  endpoint, else the embedded local model in-process.
* :func:`ask`: send one search :class:`~hia_chain.search.types.Request` to a LangChain chat
  model and get its :class:`~hia_chain.search.types.Response` (a responder's one call).
* :func:`heuristic`: a stage-1 heuristic by name (``HEURISTICS``), as ``--heuristic`` and
  the benchmark's methods name them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

from langchain_core.language_models import BaseChatModel

from hia_chain.aligned import AlignedChatModel
from hia_chain.errors import ConfigError
from hia_chain.goals import Objective
from hia_chain.scorers.base import Heuristic
from hia_chain.scorers.draft import DraftHeuristic
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic, ObservationStore
from hia_chain.scorers.text import builtin_scorers
from hia_chain.search.types import Request, Response

__all__ = [
    "DEFAULT_HEURISTIC",
    "HEURISTICS",
    "HeuristicName",
    "ask",
    "heuristic",
    "init_aligned_chat_model",
    "learned_heuristic",
    "response_model",
]

HeuristicName = Literal["instruction", "learned", "draft"]
HEURISTICS: tuple[HeuristicName, ...] = get_args(HeuristicName)
"""The heuristics :func:`heuristic` builds: ``instruction`` (reads the added instructions;
free), ``learned`` (learns the response model online over instruction cues; free),
``draft`` (a small local model drafts every candidate; one call each)."""

DEFAULT_HEURISTIC: HeuristicName = "instruction"
"""The heuristic the library, the CLI and the server use unless told otherwise.

Chosen on the benchmark's dev split by a rule fixed before the run (the higher mean reward of
one call): ``instruction`` −0.383, ``learned`` −0.398 on 40 AlpacaEval items; no setting of
the learned heuristic tried on the same split beat its own instruction prior. ``learned``
stays the choice where a user's or a model's habits differ from what instructions say, and
where a ``hia-chain calibrate`` state exists."""


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


def response_model(
    base_url: str | None = None,
    model: str | None = None,
    *,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    seed: int | None = None,
    timeout: float | None = None,
) -> BaseChatModel:
    """``ChatOpenAI`` at ``base_url`` (any OpenAI-compatible server), else the embedded
    model in-process (``[local]`` extra).

    The endpoint client never retries on its own (``max_retries=0``): retries are
    hia_chain's, inside the budget. Its key is ``OPENAI_API_KEY`` when set (local servers
    need none).

    Args:
        base_url: The endpoint, e.g. ``http://127.0.0.1:8000/v1``.
        model: The model name to ask for there; required with ``base_url``.
        temperature: Sampling temperature.
        max_tokens: Output cap per call (default: the model's own; 256 for the embedded one).
        seed: Sampling seed, where the server honours one.
        timeout: Seconds per request at the endpoint (default: the client's).

    Raises:
        ConfigError: ``base_url`` without ``model``.
    """
    if base_url:
        if not model:
            raise ConfigError("--base-url needs --model NAME (the model to ask for there).")
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=base_url,
            model=model,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),  # type: ignore[arg-type]
            temperature=temperature,
            max_tokens=max_tokens,  # type: ignore[call-arg]  # a field name; mypy sees only the alias
            seed=seed,
            max_retries=0,
            timeout=timeout,
        )
    from hia_chain.local import LocalChatModel

    # unset options keep LocalChatModel's defaults (its max_tokens is an int, never None)
    options: dict[str, Any] = {"temperature": temperature, "seed": seed}
    if max_tokens is not None:
        options["max_tokens"] = max_tokens
    local: BaseChatModel = LocalChatModel(**options)
    return local


async def ask(llm: BaseChatModel, request: Request, **extra: Any) -> Response:
    """Send ``request`` (its messages and output cap) to ``llm`` and return its :class:`Response`.

    ``functools.partial(ask, llm)`` is a :data:`~hia_chain.search.types.Responder`.

    Args:
        llm: Any LangChain chat model.
        request: The user's turn, the system instruction and the output cap to send.
        **extra: More keywords for the call (e.g. ``seed=``).
    """
    message = await llm.ainvoke(request.messages(), **extra, **request.model_kwargs())
    return Response.from_message(message)


def heuristic(
    kind: str,
    objectives: Sequence[Objective],
    *,
    state: str | Path | None = None,
    store: ObservationStore | None = None,
    drafter: BaseChatModel | None = None,
    draft_tokens: int = 64,
) -> Heuristic:
    """The stage-1 heuristic named ``kind`` (one of :data:`HEURISTICS`).

    Options that do not concern ``kind`` are ignored, so a command can pass all its flags;
    but a warm-start ``state`` is refused for any kind but ``learned``, not dropped.

    Args:
        kind: ``learned``, ``instruction`` or ``draft``.
        objectives: The objectives' scales.
        state: For ``learned``: a ``hia-chain calibrate`` file to warm-start from.
        store: For ``learned``: where it keeps its observations (default: in memory).
        drafter: For ``draft``: the model that drafts (default: the embedded model, greedy).
        draft_tokens: For ``draft``: the output cap per draft.

    Raises:
        ConfigError: an unknown ``kind``, an unreadable ``state``, or a ``state`` for a
            heuristic that cannot use one.
    """
    if state is not None and kind != "learned":
        msg = (
            f"A warm-start state is for the learned heuristic, not {kind!r}: "
            "use heuristic 'learned' (--heuristic learned) or drop the state."
        )
        raise ConfigError(msg)
    if kind == "instruction":
        return InstructionHeuristic(objectives)
    if kind == "learned":
        return learned_heuristic(objectives, state=state, store=store)
    if kind == "draft":
        if drafter is None:
            from hia_chain.local import LocalChatModel

            drafter = LocalChatModel(temperature=0.0, max_tokens=draft_tokens)
        scorers = builtin_scorers([o.name for o in objectives])
        return DraftHeuristic(drafter, scorers, max_tokens=draft_tokens, objectives=objectives)
    msg = f"Unknown heuristic {kind!r}; choose from {', '.join(HEURISTICS)}."
    raise ConfigError(msg)


def learned_heuristic(
    objectives: Sequence[Objective],
    *,
    state: str | Path | None = None,
    store: ObservationStore | None = None,
) -> LearnedHeuristic:
    """The learned heuristic over instruction cues: it predicts what the instructions say
    until it has measured how this response model actually answers them.

    Args:
        objectives: The objectives' scales.
        state: A ``hia-chain calibrate`` file to warm-start from.
        store: Where it keeps its observations (default: in memory).

    Raises:
        ConfigError: an unreadable ``state``.
    """
    fallback = InstructionHeuristic(objectives)
    if state is not None:
        return LearnedHeuristic.load(state, fallback=fallback, objectives=objectives, store=store)
    return LearnedHeuristic(fallback=fallback, objectives=objectives, store=store)

"""IVGChatModel: a LangChain chat model that decodes a local model with value guidance (IVG).

Guidance modes:

* ``"none"`` — plain sampling (temperature → top-k → top-p) through the same loop;
* ``"token"`` — token-level guidance: ``z_base + beta · Σ_j (z_tuned_j − z_ref)``;
* ``"chunk"`` — chunk-level beam search with a value function over decoded text;
* ``"both"`` — IVG: chunk-level beam search around token-guided sampling.

The guide pair is, by default, tuning-free: the guide model (the base model itself unless
``tuned_model`` is given) reads the conversation with a goal-describing system prompt, while
the reference reads it without. When the guide is the base model, the base stream is the
reference, so token guidance costs one extra forward pass per token and ``beta = 1`` equals
prompting with the goal; hence the default ``beta = 2``. An explicit pair (e.g. a DPO-tuned
small model and its SFT reference, see ``fudge.py``) goes in ``tuned_model`` and
``reference_model``; it must share the base model's vocabulary.

The chunk value defaults to the package's built-in scorers of the goal's objectives combined by
the euclidean reward R(G, r); pass ``value`` for any other :class:`ValueFunction`.

``stream`` yields the whole answer as one chunk once the search ends: beam search cannot commit
to a token until the final selection.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from hia_chain.errors import ConfigError
from hia_chain.goals import Objective, RewardName, validate_goal
from hia_chain.local.base import BaseLocalChatModel, conversation, usage
from hia_chain.local.beam import BeamResult, chunk_beam_search
from hia_chain.local.decoding import Guidance, seeded_generator
from hia_chain.local.generation import cut_at_stop
from hia_chain.local.guidance import (
    DEFAULT_NO_REPEAT_NGRAM_SIZE,
    DEFAULT_REPETITION_PENALTY,
    check_shared_vocabulary,
    goal_system_prompt,
    with_system_prompt,
)
from hia_chain.local.hf_adapter import (
    CausalStream,
    chat_ids,
    eos_token_ids,
    logits_width,
    model_device,
    pad_token_id,
    real_vocab_size,
)
from hia_chain.local.settings import GUIDANCE_MODES, DecodeSettings, GuidanceMode
from hia_chain.local.values import ScorerValue, ValueFunction

__all__ = ["IVGChatModel"]

_DECODE_FIELDS = tuple(f.name for f in dataclasses.fields(DecodeSettings))
_IDENTIFYING = (
    "model_name model_path guidance goal beta beam_width successors_per_beam chunk_tokens "
    "temperature top_k top_p repetition_penalty no_repeat_ngram_size max_tokens"
).split()


def _check_guidance(mode: Any, beta: Any) -> None:
    """Raise ConfigError for an unknown guidance mode or a beta that is not a finite number."""
    if mode not in GUIDANCE_MODES:
        msg = f"`guidance` must be none, token, chunk or both, got {mode!r}."
        raise ConfigError(msg)
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not math.isfinite(beta):
        msg = f"`beta` must be a finite number, got {beta!r}."
        raise ConfigError(msg)


class IVGChatModel(BaseLocalChatModel):
    """Value-guided decoding of a local model (the embedded SmolLM2 by default).

    Example:
        .. code-block:: python

            from hia_chain.local.ivg_chat_model import IVGChatModel

            llm = IVGChatModel(goal={"sentiment": 4}, guidance="both", max_tokens=48, seed=0)
            msg = llm.invoke("Continue this movie review: The plot was")
            msg.response_metadata["ivg"]["chunks"]   # per-chunk values of every row
    """

    guidance: GuidanceMode = "both"
    """``none``, ``token``, ``chunk`` or ``both`` (IVG)."""
    goal: dict[str, float] | None = None
    """Target per objective, e.g. ``{"sentiment": 4}``; a call may override it (``goal=``)."""
    objectives: list[Objective] | None = None
    """Objective definitions; default: the built-in verbosity, complexity, sentiment."""
    reward: RewardName = "euclidean"
    """R(G, r) of the default chunk value."""
    beta: float = 2.0
    """Token-guidance strength. 2, not the public code's 1: with the tuning-free pair built
    from the base model, 1 is the same as prompting with the goal."""
    beam_width: int = 2
    """Beams kept after each chunk (W)."""
    successors_per_beam: int = 2
    """Rows sampled from each kept beam (K)."""
    chunk_tokens: int | None = 30
    """Tokens between selections; None = one chunk (best-of-N when beam_width is 1)."""
    top_k: int | None = None
    """Sample among the k likeliest tokens; None = all."""
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    """transformers' repetition penalty over each row's prompt and answer so far (1 = off).
    On by default: the 135M embedded model otherwise repeats whole sentences."""
    no_repeat_ngram_size: int = DEFAULT_NO_REPEAT_NGRAM_SIZE
    """No ``n`` tokens in a row twice in a row's prompt and answer (0 = off)."""
    guide_system_prompt: str | None = None
    """System prompt of the tuned side. Without an explicit pair: default from the goal. With
    ``tuned_model``/``reference_model``: none unless set (set it and pass one small model as
    both to get the tuning-free pair for a different base model)."""
    tuned_model: Any = Field(default=None, exclude=True)
    """An explicit tuned guide (shares the base vocabulary); default: the base model."""
    guide_tokenizer: Any = Field(default=None, exclude=True)
    """The explicit pair's tokenizer (checked against the base's); default: the base's."""
    reference_model: Any = Field(default=None, exclude=True)
    """The explicit pair's reference; required with ``tuned_model``."""
    value: Any = Field(default=None, exclude=True)
    """A :class:`~hia_chain.local.values.ValueFunction` for chunk selection."""

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, **data: Any) -> None:
        # Checked here rather than in a pydantic validator so callers get ConfigError itself.
        super().__init__(**data)
        self.decode_settings()  # every decoding setting, by DecodeSettings' rules
        _check_guidance(self.guidance, self.beta)
        if (self.tuned_model is None) != (self.reference_model is None):
            msg = "An explicit guide pair needs both `tuned_model` and `reference_model`."
            raise ConfigError(msg)
        if self.goal is not None:
            self.goal = validate_goal(self._objectives(), self.goal)

    @property
    def _llm_type(self) -> str:
        return "hia-ivg"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _IDENTIFYING}

    def _objectives(self) -> list[Objective]:
        from hia_chain.scorers.text import BUILTIN_OBJECTIVES

        return list(self.objectives) if self.objectives else list(BUILTIN_OBJECTIVES.values())

    def decode_settings(self, **overrides: Any) -> DecodeSettings:
        """This model's decoding settings, with a call's overrides of any of them (a None
        override keeps the model's value).

        Raises:
            ConfigError: a setting is out of range.
        """
        return DecodeSettings(
            **{
                k: getattr(self, k) if overrides.get(k) is None else overrides[k]
                for k in _DECODE_FIELDS
            }
        )

    # -- one search ---------------------------------------------------------------------

    def run_search(
        self, messages: Sequence[BaseMessage], **kwargs: Any
    ) -> tuple[BeamResult, dict[str, Any]]:
        """Run one guided search (blocking): ``(BeamResult, trace)``.

        ``kwargs`` may override ``goal``, ``seed``, ``beta``, ``guidance`` and any decoding
        setting (``max_tokens``, ``temperature``, ``repetition_penalty``, ...) for this call.

        Raises:
            ConfigError: a chunk or token guidance call without a goal (or ``value``), a
                vocabulary mismatch for token guidance, or bad overrides.
        """
        given = {k: v for k, v in kwargs.items() if v is not None}
        settings = self.decode_settings(**given)
        mode, beta = given.get("guidance", self.guidance), given.get("beta", self.beta)
        _check_guidance(mode, beta)
        goal = given.get("goal", self.goal)
        goal = validate_goal(self._objectives(), goal) if goal else None
        seed = given.get("seed", self.seed)
        return _search(self, list(messages), settings, mode, float(beta), goal, seed)

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        with self._lock:
            started = time.perf_counter()
            result, trace = self.run_search(messages, **kwargs)
            trace["seconds"] = round(time.perf_counter() - started, 4)
        best = result.best
        text, reason = cut_at_stop(best.text, self._stop(stop), best.finished)
        message = AIMessage(
            content=text,
            usage_metadata=usage(trace["input_tokens"], len(best.token_ids)),
            response_metadata=self._response_metadata(reason, ivg=trace),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._result(messages, stop, kwargs)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Decoding is CPU/GPU work: a worker thread keeps the event loop free.
        return await anyio.to_thread.run_sync(lambda: self._result(messages, stop, kwargs))

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """The final answer as one chunk (with usage and trace): the search picks it at the end."""
        message = self._result(messages, stop, kwargs).generations[0].message
        chunk = ChatGenerationChunk(
            message=AIMessageChunk(
                content=message.content,
                usage_metadata=getattr(message, "usage_metadata", None),
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
        )
        if run_manager:
            run_manager.on_llm_new_token(message.text, chunk=chunk)
        yield chunk


def _default_value(llm: IVGChatModel, mode: str, goal: dict[str, float] | None) -> ValueFunction:
    """The chunk value: ``llm.value``, else the goal's built-in scorers with R(G, r)."""
    from hia_chain.scorers.text import builtin_scorers

    if llm.value is not None:
        return llm.value
    if goal is None:
        msg = f"guidance={mode!r} scores chunks against a goal: pass `goal` (or `value`)."
        raise ConfigError(msg)
    objectives = {o.name: o for o in llm._objectives()}
    scorers = builtin_scorers([objectives[n] for n in goal])
    return ScorerValue(scorers, goal, objectives=list(objectives.values()), reward=llm.reward)


def _guide(
    llm: IVGChatModel, conv: list[dict[str, str]], goal: dict[str, float] | None, beta: float
) -> tuple[Guidance, str | None, int]:
    """Prefilled guide streams: ``(Guidance, guide system prompt, guide prompt tokens)``."""
    model, tok = llm.load_weights()
    if llm.tuned_model is not None:  # an explicit (tuned, reference) pair
        guide_tok = llm.guide_tokenizer or tok
        width = min(logits_width(llm.tuned_model), logits_width(llm.reference_model))
        check_shared_vocabulary(
            tok, guide_tok, base_logits_width=logits_width(model), guide_logits_width=width
        )
        # a set guide_system_prompt goes to the tuned side: one small model with and without
        # it is the tuning-free pair for a different base model
        system = llm.guide_system_prompt
        ids, pad = chat_ids(guide_tok, conv), pad_token_id(guide_tok)
        tuned_ids = chat_ids(guide_tok, with_system_prompt(conv, system)) if system else ids
        tuned = CausalStream.prefill(llm.tuned_model, [tuned_ids], pad)
        reference = CausalStream.prefill(llm.reference_model, [ids], pad)
        return Guidance([tuned], reference, beta), system, len(ids) + len(tuned_ids)
    if goal is None and llm.guide_system_prompt is None:
        msg = "Token guidance needs a goal (or `guide_system_prompt`) to build the guide prompt."
        raise ConfigError(msg)
    system = llm.guide_system_prompt or goal_system_prompt(goal or {}, llm._objectives())
    ids = chat_ids(tok, with_system_prompt(conv, system))
    tuned = CausalStream.prefill(model, [ids], pad_token_id(tok))
    return Guidance([tuned], None, beta), system, len(ids)  # the base is the reference


def _search(
    llm: IVGChatModel,
    messages: list[BaseMessage],
    settings: DecodeSettings,
    mode: str,
    beta: float,
    goal: dict[str, float] | None,
    seed: int | None,
) -> tuple[BeamResult, dict[str, Any]]:
    """Build the streams and the value function for one call, then search."""
    model, tok = llm.load_weights()
    conv = conversation(messages)
    prompt = next((m.text for m in reversed(messages) if m.type == "human"), "")
    chunked, token = mode in ("chunk", "both"), mode in ("token", "both")
    if not chunked:  # one row to the end: nothing to select between
        settings = dataclasses.replace(
            settings, beam_width=1, successors_per_beam=1, chunk_tokens=None
        )
    value = _default_value(llm, mode, goal) if chunked else None
    pad, vocab = pad_token_id(tok), real_vocab_size(tok)
    if logits_width(model) < vocab:
        msg = (
            f"The model outputs {logits_width(model)} logits but its tokenizer has {vocab} tokens."
        )
        raise ConfigError(msg)
    guidance, system, guide_tokens = None, None, 0
    if token or getattr(value, "needs_implicit", False):
        guidance, system, guide_tokens = _guide(llm, conv, goal, beta if token else 0.0)
    base_ids = chat_ids(tok, conv)
    generator, seed = seeded_generator(model_device(model), seed)
    result = chunk_beam_search(
        CausalStream.prefill(model, [base_ids], pad),
        guidance,
        value,
        settings,
        prompt=prompt,
        decode=lambda ids: tok.decode(list(ids), skip_special_tokens=True),
        vocab_size=vocab,
        eos_ids=eos_token_ids(tok, model),
        pad_id=pad,
        generator=generator,
    )
    trace = {
        "guidance": mode,
        "beta": beta if token else None,
        "goal": goal,
        "seed": seed,
        "beam_width": settings.beam_width,
        "successors_per_beam": settings.successors_per_beam,
        "chunk_tokens": settings.chunk_tokens,
        "repetition_penalty": settings.repetition_penalty,
        "no_repeat_ngram_size": settings.no_repeat_ngram_size,
        "value": value.name if value is not None else None,
        "guide_system_prompt": system,
        "input_tokens": len(base_ids),
        "guide_prompt_tokens": guide_tokens,
        "models_per_token": 1 + (len(guidance.streams()) if guidance else 0),
        **result.trace(),
    }
    return result, trace

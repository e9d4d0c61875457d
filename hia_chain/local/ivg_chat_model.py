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

import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, Literal

import anyio
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from hia_chain.errors import ConfigError
from hia_chain.goals import Objective, RewardName, validate_goal
from hia_chain.local.chat_model import conversation, local_ls_params, resolve_weights
from hia_chain.local.guidance import (
    DEFAULT_NO_REPEAT_NGRAM_SIZE,
    DEFAULT_REPETITION_PENALTY,
    goal_system_prompt,
    repetition_processors,
    with_system_prompt,
)

__all__ = ["IVGChatModel"]

GuidanceMode = Literal["none", "token", "chunk", "both"]
_IDENTIFYING = (
    "model_name model_path guidance goal beta beam_width successors_per_beam chunk_tokens "
    "temperature top_k top_p repetition_penalty no_repeat_ngram_size max_tokens"
).split()


class IVGChatModel(BaseChatModel):
    """Value-guided decoding of a local model (the embedded SmolLM2 by default).

    Example:
        .. code-block:: python

            from hia_chain.local.ivg_chat_model import IVGChatModel

            llm = IVGChatModel(goal={"sentiment": 4}, guidance="both", max_tokens=48, seed=0)
            msg = llm.invoke("Continue this movie review: The plot was")
            msg.response_metadata["ivg"]["chunks"]   # per-chunk values of every row
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model_path: str | None = None
    """A transformers model folder; default: the embedded model, loaded on first use."""
    model_name: str = "SmolLM2-135M-Instruct"
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
    successors_per_beam: int = 2
    chunk_tokens: int | None = 30
    """Tokens between selections; None = one chunk (best-of-N when beam_width is 1)."""
    temperature: float = 0.7
    """0 decodes greedily."""
    top_k: int | None = None
    top_p: float = 1.0
    repetition_penalty: float = DEFAULT_REPETITION_PENALTY
    """transformers' repetition penalty over each row's prompt and answer so far (1 = off).
    On by default: the 135M embedded model otherwise repeats whole sentences."""
    no_repeat_ngram_size: int = DEFAULT_NO_REPEAT_NGRAM_SIZE
    """No ``n`` tokens in a row twice in a row's prompt and answer (0 = off)."""
    max_tokens: int = 256
    seed: int | None = None
    """Seed of the sampler's ``torch.Generator``; None draws a fresh one per call."""
    stop: list[str] | None = None
    guide_system_prompt: str | None = None
    """System prompt of the tuned side. Without an explicit pair: default from the goal. With
    ``tuned_model``/``reference_model``: none unless set (set it and pass one small model as
    both to get the tuning-free pair for a different base model)."""
    hf_model: Any = Field(default=None, exclude=True)
    """An already-loaded base model (tests inject tiny ones)."""
    tokenizer: Any = Field(default=None, exclude=True)
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
        checks = [
            (self.beam_width < 1, f"`beam_width` must be >= 1, got {self.beam_width}."),
            (
                self.successors_per_beam < 1,
                f"`successors_per_beam` must be >= 1, got {self.successors_per_beam}.",
            ),
            (self.max_tokens < 1, f"`max_tokens` must be >= 1, got {self.max_tokens}."),
            (
                self.chunk_tokens is not None and self.chunk_tokens < 1,
                f"`chunk_tokens` must be >= 1 or None, got {self.chunk_tokens}.",
            ),
            (not math.isfinite(self.beta), f"`beta` must be a finite number, got {self.beta}."),
            (
                not (math.isfinite(self.temperature) and self.temperature >= 0),
                f"`temperature` must be >= 0 (0 = greedy), got {self.temperature}.",
            ),
            (
                self.top_k is not None and self.top_k < 1,
                f"`top_k` must be >= 1 or None, got {self.top_k}.",
            ),
            (not 0 < self.top_p <= 1, f"`top_p` must be in (0, 1], got {self.top_p}."),
            (
                (self.tuned_model is None) != (self.reference_model is None),
                "An explicit guide pair needs both `tuned_model` and `reference_model`.",
            ),
        ]
        for bad, msg in checks:
            if bad:
                raise ConfigError(msg)
        repetition_processors(self.repetition_penalty, self.no_repeat_ngram_size)  # validates
        if self.goal is not None:
            self.goal = validate_goal(self._objectives(), self.goal)

    @property
    def _llm_type(self) -> str:
        return "hia-ivg"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _IDENTIFYING}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        return local_ls_params(self, stop, kwargs)

    def _objectives(self) -> list[Objective]:
        from hia_chain.scorers.text import BUILTIN_OBJECTIVES

        return list(self.objectives) if self.objectives else list(BUILTIN_OBJECTIVES.values())

    def _resolve(self) -> tuple[Any, Any]:
        self.hf_model, self.tokenizer = resolve_weights(
            self.hf_model, self.tokenizer, self.model_path
        )
        return self.hf_model, self.tokenizer

    # -- one search ---------------------------------------------------------------------

    def run_search(
        self, messages: Sequence[BaseMessage], **kwargs: Any
    ) -> tuple[Any, dict[str, Any]]:
        """Run one guided search (blocking): ``(SearchResult, trace)``.

        ``kwargs`` may override ``goal``, ``seed``, ``max_tokens``, ``temperature``, ``beta``,
        ``guidance``, ``repetition_penalty`` and ``no_repeat_ngram_size`` for this call.

        Raises:
            ConfigError: a chunk or token guidance call without a goal (or ``value``), a
                vocabulary mismatch for token guidance, or bad overrides.
        """
        return _run_ivg(self, list(messages), kwargs)

    def _result(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> ChatResult:
        with self._lock:
            started = time.perf_counter()
            result, trace = self.run_search(messages, **kwargs)
            trace["seconds"] = round(time.perf_counter() - started, 4)
        best = result.best
        text, reason = best.text, "stop" if best.finished else "length"
        for s in stop or self.stop or ():
            if s and s in text:
                text, reason = text[: text.index(s)], "stop"
        usage = UsageMetadata(
            input_tokens=trace["input_tokens"],
            output_tokens=len(best.token_ids),
            total_tokens=trace["input_tokens"] + len(best.token_ids),
        )
        message = AIMessage(
            content=text,
            usage_metadata=usage,
            response_metadata={
                "model_name": self.model_name,
                "finish_reason": reason,
                "model_provider": "hia_local",
                "ivg": trace,
            },
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


_OVERRIDES = (
    "goal",
    "seed",
    "max_tokens",
    "temperature",
    "beta",
    "guidance",
    "repetition_penalty",
    "no_repeat_ngram_size",
)


def _default_value(llm: IVGChatModel, mode: str, goal: dict[str, float] | None) -> Any:
    """The chunk value: ``llm.value``, else the goal's built-in scorers with R(G, r)."""
    from hia_chain.local.values import ScorerValue
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
) -> tuple[Any, str | None, int]:
    """Prefilled guide streams: ``(Guidance, guide system prompt, guide prompt tokens)``."""
    from hia_chain.local._decode import Guidance
    from hia_chain.local._hf_adapter import CausalStream, chat_ids, logits_width, pad_token_id
    from hia_chain.local.guidance import check_shared_vocabulary

    model, tok = llm._resolve()
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


def _run_ivg(
    llm: IVGChatModel, messages: list[BaseMessage], kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """Build the streams and the value function for one call, then search."""
    import torch

    from hia_chain.local._beam import chunk_beam_search
    from hia_chain.local._hf_adapter import (
        CausalStream,
        chat_ids,
        eos_token_ids,
        logits_width,
        model_device,
        pad_token_id,
        real_vocab_size,
    )
    from hia_chain.local.guidance import sampling_processors

    opts = {k: kwargs[k] if kwargs.get(k) is not None else getattr(llm, k) for k in _OVERRIDES}
    mode, beta, temperature = opts["guidance"], float(opts["beta"]), float(opts["temperature"])
    if mode not in ("none", "token", "chunk", "both") or not math.isfinite(beta):
        msg = f"`guidance` must be none, token, chunk or both and `beta` finite; got {mode!r}, {beta}."
        raise ConfigError(msg)
    repetition_processors(opts["repetition_penalty"], opts["no_repeat_ngram_size"])  # validates
    goal = validate_goal(llm._objectives(), opts["goal"]) if opts["goal"] else None
    model, tok = llm._resolve()
    conv = conversation(messages)
    prompt = next((m.text for m in reversed(messages) if m.type == "human"), "")
    chunked, token = mode in ("chunk", "both"), mode in ("token", "both")
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
    generator = torch.Generator(device=model_device(model))
    seed = int(opts["seed"]) if opts["seed"] is not None else int(generator.seed())
    generator.manual_seed(seed)
    shape = (llm.beam_width, llm.successors_per_beam, llm.chunk_tokens) if chunked else (1, 1, None)
    result = chunk_beam_search(
        CausalStream.prefill(model, [base_ids], pad),
        guidance,
        value,
        prompt=prompt,
        decode=lambda ids: tok.decode(list(ids), skip_special_tokens=True),
        beam_width=shape[0],
        successors_per_beam=shape[1],
        chunk_tokens=shape[2],
        max_new_tokens=int(opts["max_tokens"]),
        processors=sampling_processors(temperature, llm.top_k, llm.top_p),
        vocab_size=vocab,
        eos_ids=eos_token_ids(tok, model),
        pad_id=pad,
        generator=generator,
        sample=temperature > 0,
        repetition_penalty=opts["repetition_penalty"],
        no_repeat_ngram_size=opts["no_repeat_ngram_size"],
    )
    trace = {
        "guidance": mode,
        "beta": beta if token else None,
        "goal": goal,
        "seed": seed,
        "beam_width": shape[0],
        "successors_per_beam": shape[1],
        "chunk_tokens": shape[2],
        "repetition_penalty": opts["repetition_penalty"],
        "no_repeat_ngram_size": opts["no_repeat_ngram_size"],
        "value": value.name if value is not None else None,
        "guide_system_prompt": system,
        "input_tokens": len(base_ids),
        "guide_prompt_tokens": guide_tokens,
        "models_per_token": 1 + (len(guidance.streams()) if guidance else 0),
        **result.trace(),
    }
    return result, trace

"""AlignedChatModel: the LangChain face of HIA, a drop-in ``BaseChatModel`` over any chat model.

Each call runs the HIA search (propose → heuristic filter → budgeted calls → reference
selection) on the last human message and answers with the best response. The search runs as
a chain-type child run (``hia_search``) so the optimizer, scorers and every response call
show up nested under the aligned call in tracing and ``astream_events``, with progress as
custom events (``hia_proposed``, ``hia_round``, ``hia_response``, ``hia_done``).

Streaming: the answer is known only once the search has chosen it, so ``stream``/``astream``
yield it as one last chunk (with the trace and usage); progress streams as the custom events
above.

Sync entry points (``invoke``, ``batch``, ``stream``) call every model with its sync API (see
:attr:`RunContext.sync`), so a provider client cached across calls keeps working.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, ensure_config
from langchain_core.runnables.configurable import DynamicRunnable
from langchain_core.tools import BaseTool
from langchain_core.utils.utils import LC_ID_PREFIX
from pydantic import ConfigDict, Field, ValidationError

from hia_chain._settings import check_names, config_error
from hia_chain._step import first_call_step
from hia_chain._uncached import uncached
from hia_chain._window import check_fits
from hia_chain.agents import (
    StepPolicy,
    ThreadBudgets,
    caller_config,
    continues_after_tool,
    decide_step,
    instructions_in_system,
    run_budget,
)
from hia_chain.budget import ROLES, BaseBudget, Budget
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, ConfigError
from hia_chain.goals import Objective, RewardName, get_reward_function, validate_goal
from hia_chain.optimizer import PromptOptimizer, TemplateOptimizer
from hia_chain.scorers.base import Heuristic, ReferenceScorer
from hia_chain.search import HIASearch, Plan, Response, SearchResult, SearchSettings
from hia_chain.search.types import Candidate, FilterName, SearchName
from hia_chain.trace import TraceMode, shape_trace

__all__ = ["AlignedChatModel"]

logger = logging.getLogger(__name__)

_SETTING_KEYS = (
    "search",
    "filter",
    "budget",
    "candidates_per_round",
    "beam_width",
    "reward",
    "seed",
    "max_concurrency",
    "max_retries",
    "max_tokens",
    "exploration",
    "timeout",
    "deadline",
)


def _default_objectives() -> list[Objective]:
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES

    return list(BUILTIN_OBJECTIVES.values())


class AlignedChatModel(BaseChatModel):
    """Steers any chat model toward a per-request goal within a hard call budget (HIA).

    Example:
        .. code-block:: python

            from hia_chain import AlignedChatModel

            aligned = AlignedChatModel(model=llm, goal={"verbosity": 1}, budget=2)
            msg = await aligned.ainvoke("Explain how vaccines work.")
            msg.response_metadata["hia"]["candidates"]  # the full trace

    Every search setting (``goal``, ``budget``, ``search``, ``filter``, ``reward``, ``seed``,
    ...) can be overridden per call as a keyword: ``aligned.invoke(p, goal={...})``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, populate_by_name=True)

    model: Runnable[LanguageModelInput, BaseMessage] = Field(alias="llm")
    """The response model: the expensive black box whose calls the budget counts. Usually a
    chat model; a bound one (``llm.bind_tools(...)``) is accepted too."""
    objectives: list[Objective] = Field(default_factory=_default_objectives)
    """Objectives a goal may name; default: verbosity, complexity and sentiment (0–4)."""
    goal: dict[str, float] = Field(default_factory=dict)
    """Target per objective, e.g. ``{"verbosity": 1, "complexity": 3}``."""
    budget: int = 2
    """Response-model calls per request (never exceeded)."""
    shared_budget: BaseBudget | None = Field(default=None, exclude=True)
    """A pool (calls, tokens, cost, per-role caps) shared by every request of this model."""
    search: SearchName = "bon"
    filter: FilterName = "heuristic"
    """``heuristic`` is HIA; ``random`` and ``order`` are the unfiltered baselines."""
    reward: RewardName = "euclidean"
    candidates_per_round: int | None = None
    beam_width: int = 2
    seed: int | None = None
    max_concurrency: int = 8
    max_retries: int = 2
    """Retries of transient errors of the response model, each paid from the budget."""
    max_tokens: int | None = None
    """Bound on response tokens per call: reserved by token/cost caps and passed to the model
    when it differs from the model's own; default: the model's own."""
    exploration: float = 0.0
    timeout: float | None = 120.0
    """Seconds one model call may take before it is abandoned (then retried if the budget
    allows); ``None`` leaves it to the model's client."""
    deadline: float | None = None
    """Seconds a whole request may take; the best answer measured by then is returned."""
    optimizer: PromptOptimizer = Field(default_factory=TemplateOptimizer, exclude=True)
    scorers: list[ReferenceScorer] | None = Field(default=None, exclude=True)
    """Reference scorers; default: the built-in text scorers of the objectives."""
    heuristic: Heuristic | None = Field(default=None, exclude=True)
    """Stage-1 heuristic; default: an online-learned heuristic over instruction cues."""
    steps: StepPolicy | None = Field(default=None, exclude=True)
    """Which agent steps are aligned (see :mod:`hia_chain.agents`): ``"final"`` sends a step
    once and aligns only a text answer (a tool call passes through at one call); ``"all"``
    aligns every step; or a function of the messages returning ``"final"``, ``"all"`` or
    ``"pass"``. Default: ``"final"`` when tools are bound and not forced, else ``"all"``."""
    agent_budget: BaseBudget | ThreadBudgets | None = Field(default=None, exclude=True)
    """One cap for every step of an agent run (a budget) or of each thread
    (:class:`~hia_chain.agents.ThreadBudgets`); ``configurable={"hia_budget": ...}`` overrides
    it per run. When it runs dry the answer is the best so far, flagged
    ``budget_exhausted``, instead of an error."""
    trace: TraceMode = "full"
    response_rate_limiter: BaseRateLimiter | None = Field(default=None, exclude=True)
    """Acquired once per response call (each candidate, each retry). ``rate_limiter=`` on the
    aligned model is moved here: LangChain would acquire it once per aligned request."""
    """What ``response_metadata["hia"]`` keeps: ``full`` (every candidate), ``summary``
    (no candidate texts) or ``none`` (flags only); see :mod:`hia_chain.trace`."""

    _search: HIASearch

    def __init__(self, **data: Any) -> None:
        _check_constructor(data)
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, data) from None
        # Checked here, after pydantic, so bad settings raise ConfigError itself (naming the
        # field and the fix) rather than a wrapped ValidationError.
        self._build()

    def _build(self) -> None:
        if self.scorers is None:
            from hia_chain.scorers.text import builtin_scorers

            self.scorers = builtin_scorers(self.objectives)  # mapped onto each objective's scale
        if self.heuristic is None:
            self.heuristic = _default_heuristic(self.objectives)
        if self.max_tokens is None:
            self.max_tokens = _own_max_tokens(self.model)
        if self.rate_limiter is not None:
            # One acquire per response call (each candidate, each retry), not one per request.
            self.response_rate_limiter, self.rate_limiter = self.rate_limiter, None
        self._search = HIASearch(self.objectives, self.scorers, self.optimizer, self.heuristic)
        if self.goal:
            validate_goal(self.objectives, self.goal)
        self._settings({})  # validate the defaults now, not at the first call

    # -- LangChain identity ---------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "hia-aligned"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": getattr(_unbound(self.model), "_identifying_params", {}),
            "goal": self.goal,
            **{k: getattr(self, k) for k in _SETTING_KEYS},
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        inner = _unbound(self.model)
        own = {"goal", *_SETTING_KEYS}
        passthrough = {k: v for k, v in kwargs.items() if k not in own}
        params: LangSmithParams = (
            inner._get_ls_params(stop=stop, **passthrough)
            if isinstance(inner, BaseChatModel)
            else {}
        )
        params["ls_provider"] = f"hia/{params.get('ls_provider', 'unknown')}"
        params.setdefault("ls_model_type", "chat")
        return params

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to the response model; alignment still applies to each answer.

        Every candidate is sent with the tools bound. An answer that calls a tool is scored
        on its arguments (JSON), so a goal such as "verbosity 1" steers the tool-call content
        too, and the chosen answer keeps its ``tool_calls`` intact. Also what makes
        ``with_structured_output`` work: LangChain builds it on ``bind_tools``. Returns a
        ``RunnableBinding`` like every chat model's ``bind_tools``.
        """
        inner = _unbound(self.model)
        if not isinstance(inner, BaseChatModel):
            msg = "bind_tools needs the response model to be a chat model."
            raise ConfigError(msg)
        bound = inner.bind_tools(tools, **kwargs)
        return self.model_copy(update={"model": bound}).bind()

    # -- the search -----------------------------------------------------------------------

    def _settings(self, overrides: dict[str, Any]) -> SearchSettings:
        values = {k: overrides.get(k, getattr(self, k)) for k in _SETTING_KEYS}
        return SearchSettings(**values)

    def _split_kwargs(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, float], SearchSettings, dict[str, Any]]:
        check_names(kwargs, ("goal", *_SETTING_KEYS))  # a misspelled setting is not a model kwarg
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in _SETTING_KEYS}
        goal = kwargs.pop("goal", None)
        goal = self.goal if goal is None else goal  # an empty per-call goal is an error too
        if not goal:
            names = ", ".join(o.name for o in self.objectives)
            msg = (
                "The goal is empty: set `goal=` on the model or pass a non-empty "
                f"`goal={{...}}` per call, with targets for some of: {names}."
            )
            raise ConfigError(msg)
        return dict(goal), self._settings(overrides), kwargs

    def plan(self, **overrides: Any) -> Plan:
        """Dry run: the most calls and tokens a request can use with these settings.

        Raises:
            ConfigError: a keyword is not a search setting, or a setting or the goal is bad.
        """
        goal, settings, unknown = self._split_kwargs(dict(overrides))
        if unknown:
            known = ", ".join(("goal", *_SETTING_KEYS))
            msg = f"plan() got unknown settings {sorted(unknown)}; settings are: {known}."
            raise ConfigError(msg)
        validate_goal(self.objectives, goal)
        return self._search.plan(settings)

    async def arun_search(
        self,
        messages: Sequence[BaseMessage],
        *,
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> SearchResult:
        """Run HIA on ``messages`` and return the full search result (not just a message)."""
        result, _, _ = await self._asearch(messages, stop, run_manager, sync=False, kwargs=kwargs)
        return result

    async def _asearch(
        self,
        messages: Sequence[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | CallbackManagerForLLMRun | None,
        *,
        sync: bool,
        kwargs: dict[str, Any],
    ) -> tuple[SearchResult, dict[str, Any], str]:
        """The step's search result, what the agent policy did, and the trace mode."""
        kwargs = dict(kwargs)
        steps = kwargs.pop("steps", self.steps)
        trace_mode = kwargs.pop("trace", self.trace)
        shape_trace({}, trace_mode)  # a bad mode fails before anything is spent
        goal, settings, passthrough = self._split_kwargs(kwargs)
        # Candidates never stream (`stream=False` is LangChain's per-call opt-out; the child
        # runs are also tagged `nostream` for LangGraph): only the chosen answer reaches a
        # message stream.
        if _is_chat_model(self.model):
            passthrough["stream"] = False
        if settings.max_tokens is not None and settings.max_tokens != _own_max_tokens(self.model):
            passthrough["max_tokens"] = settings.max_tokens  # the bound the budget reserves
        caller = caller_config.get()
        pool = run_budget(caller, self.agent_budget, self.shared_budget)
        policy, decision = decide_step(steps, messages, self.model)
        continuing = continues_after_tool(messages)
        index, prompt = _last_human(messages)
        await check_fits(self.model, prompt, settings.max_tokens)  # before any call is made
        chain = await _start_chain(run_manager, prompt, goal)
        context = RunContext(
            budget=Budget(),
            run_manager=chain,
            sync=sync,
            fixed_input_chars=_fixed_chars(self.model, messages, index),
            caller=caller,
        )
        model = uncached(self.model)  # every candidate a real call, never a cached copy
        limiter = self.response_rate_limiter
        info: dict[str, Any] = {
            "steps": policy,
            "decision": decision,
            "continuation": continuing,
            "budget_scope": _scope(caller, self.agent_budget, self.shared_budget),
        }

        async def respond(candidate: str) -> Response:
            if candidate == prompt:
                sent = list(messages)
            elif continuing:  # after tool results: instructions in the system message
                sent = instructions_in_system(messages, prompt, candidate)
            else:
                sent = list(messages)
                sent[index] = _with_text(messages[index], candidate)
            if limiter is not None:
                await limiter.aacquire(blocking=True)
            message = await context.ainvoke(model, sent, "response", stop=stop, **passthrough)
            usage = message.usage_metadata if isinstance(message, AIMessage) else None
            return Response(
                text=_scored_text(message),
                input_tokens=usage["input_tokens"] if usage else None,
                output_tokens=usage["output_tokens"] if usage else None,
                message=message,
            )

        shared = pool if pool is not None else self.shared_budget
        try:
            try:
                if decision == "all":
                    result = await self._search.run(
                        prompt, goal, respond, settings, shared=shared, context=context
                    )
                    info["step"] = "aligned"
                else:
                    result, info["step"] = await first_call_step(
                        self._search,
                        prompt,
                        goal,
                        respond,
                        settings,
                        pool=shared,
                        context=context,
                        align=decision == "final",
                    )
            except BudgetExceededError as exc:
                if pool is None:
                    raise
                # The run's budget is spent: the agent gets an empty, flagged answer (and
                # stops, having no tool call to make), never an unbudgeted call.
                result = await _exhausted(prompt, goal, settings, context, exc)
                info["step"] = "budget exhausted"
        except BaseException as exc:
            if chain is not None:
                with anyio.CancelScope(shield=True):
                    await chain.on_chain_error(exc)
            raise
        if chain is not None:
            await chain.on_chain_end(
                {"output": result.best.response.text if result.best.response else ""}
            )
        return result, info, trace_mode

    def _to_result(
        self, result: SearchResult, info: dict[str, Any] | None = None, trace: str = "full"
    ) -> ChatResult:
        best = result.best.response
        inner = best.message if best is not None else None
        meta = dict(getattr(inner, "response_metadata", {}) or {})
        # No `model_name` here: the inner calls already report their usage under their own
        # model names to usage callbacks, and the aligned message must not count them twice.
        inner_name = meta.pop("model_name", None)
        meta["inner_model_name"] = inner_name
        full = result.trace()
        if info is not None:
            full["agent"] = info
        meta["hia"] = shape_trace(full, trace)
        message = AIMessage(
            # The provider's own content (a tool-calling answer keeps its empty or structured
            # content); the scored text only stands in when there is no provider message.
            content=inner.content if isinstance(inner, AIMessage) else (best.text if best else ""),
            response_metadata=meta,
            usage_metadata=_sum_usage(result),
            tool_calls=list(getattr(inner, "tool_calls", []) or []),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        # LangChain gives `_agenerate` only callbacks, tags and metadata; the caller's whole
        # config (configurable, run name, recursion limit) reaches the search this way.
        token = caller_config.set(ensure_config(config))
        try:
            return await super().ainvoke(input, config, stop=stop, **kwargs)
        finally:
            caller_config.reset(token)

    def invoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AIMessage:
        token = caller_config.set(ensure_config(config))
        try:
            return super().invoke(input, config, stop=stop, **kwargs)
        finally:
            caller_config.reset(token)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        found = await self._asearch(messages, stop, run_manager, sync=False, kwargs=kwargs)
        result = self._to_result(*found)
        if run_manager is not None:
            await run_manager.on_llm_new_token(
                _announced(result, run_manager.run_id).text, chunk=_answer_chunk(result)
            )
        return result

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        async def main() -> tuple[SearchResult, dict[str, Any], str]:
            return await self._asearch(messages, stop, run_manager, sync=True, kwargs=kwargs)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            result = self._to_result(*anyio.run(main))
        else:
            # Called synchronously from inside a running loop (e.g. Jupyter): run on a worker
            # thread with its own loop rather than re-entering the caller's (and with the
            # caller's context, which carries its config).
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                context = contextvars.copy_context()
                result = self._to_result(*pool.submit(context.run, anyio.run, main).result())
        if run_manager is not None:
            run_manager.on_llm_new_token(
                _announced(result, run_manager.run_id).text, chunk=_answer_chunk(result)
            )
        return result

    # -- streaming: the answer comes whole, as one last chunk -------------------------------
    #
    # langchain-core calls `_stream`/`_astream` without the run manager from `stream`,
    # `astream` and streaming-handler invokes, which would cut the search's child runs off the
    # run tree. So the aligned model never "streams" in those paths (`_should_stream`), public
    # `stream`/`astream` yield `invoke`'s answer as one chunk, and `_stream`/`_astream` serve
    # the v3 event protocol, which does pass the run manager.

    def _should_stream(self, *, async_api: bool, **kwargs: Any) -> bool:
        return False

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        message = self.invoke(input, config, stop=stop, **kwargs)
        yield _as_chunk(message)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        message = await self.ainvoke(input, config, stop=stop, **kwargs)
        yield _as_chunk(message)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=_as_chunk(result.generations[0].message))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        result = await self._agenerate(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=_as_chunk(result.generations[0].message))


def _check_constructor(data: dict[str, Any]) -> None:
    """Names and search settings checked as a per-call override is (the same ConfigError)."""
    known = set()
    for name, info in AlignedChatModel.model_fields.items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
    check_names(data, known)
    given = {k: data[k] for k in _SETTING_KEYS if k in data}
    SearchSettings(**given)
    if "reward" in given:
        get_reward_function(given["reward"], ())


def _as_chunk(message: BaseMessage) -> AIMessageChunk:
    """The chosen answer as a stream's one and last chunk, tool calls included."""
    calls = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c.get("id"), index=i)
        for i, c in enumerate(getattr(message, "tool_calls", None) or [])
    ]
    return AIMessageChunk(
        content=message.content,
        id=message.id,
        response_metadata=message.response_metadata,
        usage_metadata=getattr(message, "usage_metadata", None),
        tool_call_chunks=calls,
        chunk_position="last",
    )


def _unbound(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """The chat model under any ``RunnableBinding`` layers (e.g. from ``bind_tools``)."""
    while isinstance(model, RunnableBinding):
        model = model.bound
    return model


def _own_max_tokens(model: Runnable[Any, Any]) -> int | None:
    """The output bound the response model applies by itself, if it has one."""
    bound = getattr(_unbound(model), "max_tokens", None)
    return bound if isinstance(bound, int) else None


_NON_TEXT_BLOCK_TOKENS = 2048
"""Allowance per image/audio/file block: providers bill such a block by its size, not its
characters (a high-detail image is about 1,100 tokens at OpenAI and 1,600 at Anthropic)."""


def _fixed_chars(model: Runnable[Any, Any], messages: Sequence[BaseMessage], index: int) -> int:
    """An upper bound, in characters (≥ tokens), on what every candidate is sent with besides
    its own text: the other messages with their tool calls, the aligned message's non-text
    blocks, and everything bound to the model (tool schemas, settings) at any layer."""

    def size(value: Any) -> int:
        return len(json.dumps(value, default=str))

    total = 0
    for i, m in enumerate(messages):
        blocks = m.content if isinstance(m.content, list) else []
        non_text = [b for b in blocks if isinstance(b, dict) and b.get("type") != "text"]
        total += len(non_text) * _NON_TEXT_BLOCK_TOKENS
        if i != index:
            total += size(m.content) + size(getattr(m, "tool_calls", None) or []) + 16
        elif non_text:
            total += size(non_text)
    layer = model
    while isinstance(layer, RunnableBinding):
        total += size(layer.kwargs)
        layer = layer.bound
    return total


def _with_text(message: BaseMessage, text: str) -> HumanMessage:
    """The human message with its text replaced by ``text``; images and other blocks kept."""
    if isinstance(message.content, str):
        return HumanMessage(content=text)
    blocks: list[Any] = []
    for block in message.content:
        is_text = isinstance(block, str) or (
            isinstance(block, dict) and block.get("type") == "text"
        )
        if not is_text:
            blocks.append(block)
        elif not any(isinstance(b, dict) and b.get("type") == "text" for b in blocks):
            blocks.append({"type": "text", "text": text})  # the first text block carries it all
    return HumanMessage(content=blocks)


def _scored_text(message: BaseMessage) -> str:
    """What the reference scorers see: the text, or the tool-call arguments if no text."""
    calls = getattr(message, "tool_calls", None)
    if message.text or not calls:
        return message.text
    return json.dumps([c["args"] for c in calls])


def _default_heuristic(objectives: Sequence[Objective]) -> Heuristic:
    """Learned online from this model's measured answers, starting from instruction cues."""
    from hia_chain.scorers.instruction import InstructionHeuristic
    from hia_chain.scorers.learned import LearnedHeuristic

    return LearnedHeuristic(fallback=InstructionHeuristic(objectives), objectives=objectives)


def _last_human(messages: Sequence[BaseMessage]) -> tuple[int, str]:
    for i in range(len(messages) - 1, -1, -1):
        if isinstance(messages[i], HumanMessage):
            return i, messages[i].text
    msg = "AlignedChatModel needs a human message to align: the input has none."
    raise ConfigError(msg)


async def _start_chain(
    run_manager: AsyncCallbackManagerForLLMRun | CallbackManagerForLLMRun | None,
    prompt: str,
    goal: dict[str, float],
) -> Any:
    """Open the ``hia_search`` chain run under the aligned call's LLM run."""
    if run_manager is None:
        return None
    manager = AsyncCallbackManager(handlers=[], parent_run_id=run_manager.run_id)
    manager.set_handlers(run_manager.inheritable_handlers)
    manager.add_tags(run_manager.inheritable_tags)
    manager.add_metadata(run_manager.inheritable_metadata)
    return await manager.on_chain_start(
        {"name": "hia_search"}, {"prompt": prompt, "goal": goal}, name="hia_search"
    )


def _sum_usage(result: SearchResult) -> UsageMetadata | None:
    """Token usage summed over every response call, or None if no provider reported any."""
    usage = result.usage["response"]
    if usage["calls"] == usage["unreported_calls"]:
        return None
    i, o = int(usage["input_tokens"]), int(usage["output_tokens"])
    return UsageMetadata(input_tokens=i, output_tokens=o, total_tokens=i + o)


def _scope(
    config: RunnableConfig | None,
    agent_budget: BaseBudget | ThreadBudgets | None,
    shared: BaseBudget | None,
) -> str:
    """Which cap the step drew from, for the trace."""
    given = ((config or {}).get("configurable") or {}).get("hia_budget", agent_budget)
    if isinstance(given, ThreadBudgets):
        return "thread"
    if given is not None:
        return "run"
    return "shared" if shared is not None else "request"


async def _exhausted(
    prompt: str,
    goal: dict[str, float],
    settings: SearchSettings,
    context: RunContext,
    exc: BudgetExceededError,
) -> SearchResult:
    """The flagged, empty answer of a step the run's budget could not pay for."""
    usage = {role: (await context.budget.ausage(role)).as_dict() for role in ROLES}
    none = Candidate(id=0, prompt=prompt, origin="original", round=0)
    none.error = f"BudgetExceededError: {exc}"
    return SearchResult(
        best=none,
        candidates=[none],
        settings=settings,
        goal=goal,
        usage=usage,
        rounds=0,
        budget_exhausted=True,
        stopped="budget exhausted",
    )


def _is_chat_model(model: Runnable[Any, Any]) -> bool:
    """A chat model under bindings or configurable fields/alternatives: it takes LangChain's
    ``stream=`` keyword (a user function might not)."""
    while True:
        if isinstance(model, RunnableBinding):
            model = model.bound
        elif isinstance(model, DynamicRunnable):
            model = model.default
        else:
            return isinstance(model, BaseChatModel)


def _announced(result: ChatResult, run_id: Any) -> BaseMessage:
    """The answer with the id LangChain would give it, set now so the one chunk announced to
    stream handlers and the final message are recognised as one message (LangGraph's
    ``stream_mode="messages"`` shows it once)."""
    message = result.generations[0].message
    if message.id is None:
        message.id = f"{LC_ID_PREFIX}-{run_id}-0"
    return message


def _answer_chunk(result: ChatResult) -> ChatGenerationChunk:
    """The chosen answer as the run's one stream chunk: what ``astream_events`` shows as
    ``on_chat_model_stream``; no candidate ever streams."""
    return ChatGenerationChunk(message=_as_chunk(result.generations[0].message))

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

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import anyio
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LangSmithParams, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.rate_limiters import BaseRateLimiter
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig, ensure_config
from langchain_core.runnables.configurable import DynamicRunnable
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, ValidationError

from hia_chain._messages import (
    announced,
    answer_chunk,
    as_chunk,
    candidate_messages,
    cut_capped,
    fixed_chars,
    last_human,
    scored_text,
    sum_usage,
)
from hia_chain._settings import check_names, config_error
from hia_chain._step import budget_scope, exhausted_step, first_call_step
from hia_chain._uncached import uncached
from hia_chain._window import check_fits, own_max_tokens
from hia_chain.agents import (
    StepPolicy,
    ThreadBudgets,
    caller_config,
    continues_after_tool,
    decide_step,
    run_budget,
)
from hia_chain.asyncutil import run_sync
from hia_chain.budget import BaseBudget, Budget
from hia_chain.context import RunContext
from hia_chain.errors import BudgetExceededError, ConfigError
from hia_chain.goals import Objective, RewardName, validate_goal
from hia_chain.optimizer import PromptOptimizer, TemplateOptimizer
from hia_chain.optimizer.base import OptimizeRequest, Proposal
from hia_chain.scorers.base import Heuristic, ReferenceScorer
from hia_chain.search import HIASearch, Plan, Request, Response, SearchResult, SearchSettings
from hia_chain.search.types import SETTING_NAMES, FilterName, SearchName
from hia_chain.trace import TraceMode, shape_trace

__all__ = ["AlignedChatModel"]

_DEFAULTS = SearchSettings()


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

    # Search settings: the defaults and their validation are SearchSettings' (one source);
    # each can be overridden per call as a keyword.
    search: SearchName = _DEFAULTS.search
    """How calls are spent: ``bon`` (one round of ``budget`` filtered candidates),
    ``greedy`` (rounds of one call, refined with measured feedback), ``beam`` (rounds of
    ``beam_width`` calls seeded by the best so far) or ``sample`` (best-of-N sampling of the
    original prompt, the baseline)."""
    filter: FilterName = _DEFAULTS.filter
    """Stage-1 choice of what to send: ``heuristic`` is HIA; ``random`` and ``order`` are the
    unfiltered baselines."""
    budget: int = _DEFAULTS.budget
    """Response-model calls per request (never exceeded)."""
    candidates_per_round: int | None = _DEFAULTS.candidates_per_round
    """Candidate prompts proposed per round, the original included; default max(8, 2K) for
    K calls per round."""
    beam_width: int = _DEFAULTS.beam_width
    """Beams of ``search="beam"``: calls per round, and how many of the best answers seed
    the next round."""
    reward: RewardName = _DEFAULTS.reward
    """How closeness to the goal is scored: ``euclidean``, ``max_error`` (the worst
    objective) or ``goal_completion`` (objectives within tolerance)."""
    seed: int | None = _DEFAULTS.seed
    """Seeds the optimizer's proposals and the ``random`` filter; ``None``: unseeded."""
    max_concurrency: int = _DEFAULTS.max_concurrency
    """Most response calls of one request in flight at once."""
    max_retries: int = _DEFAULTS.max_retries
    """Retries of transient errors of the response model, each paid from the budget."""
    max_tokens: int | None = _DEFAULTS.max_tokens
    """Bound on response tokens per call: reserved by token/cost caps and passed to the model
    when it differs from the model's own; default: the model's own."""
    exploration: float = _DEFAULTS.exploration
    """Optimism for uncertain heuristic predictions (κ): candidates are ranked as if each
    prediction were up to κσ closer to the goal; 0 ranks by the prediction alone."""
    timeout: float | None = _DEFAULTS.timeout
    """Seconds one model call may take before it is abandoned (then retried if the budget
    allows); ``None`` leaves it to the model's client."""
    deadline: float | None = _DEFAULTS.deadline
    """Seconds a whole request may take; the best answer measured by then is returned."""

    shared_budget: BaseBudget | None = Field(default=None, exclude=True)
    """A pool (calls, tokens, cost, per-role caps) shared by every request of this model."""
    optimizer: PromptOptimizer = Field(default_factory=TemplateOptimizer, exclude=True)
    """Proposes the candidate prompts; default: instruction templates (no model calls), with
    output-capped variants where they ask for a short answer."""
    scorers: list[ReferenceScorer] | None = Field(default=None, exclude=True)
    """Reference scorers, in priority order: the first that measures an objective gives its
    score (a later one is not asked for it). Default: the built-in text scorers."""
    heuristic: Heuristic | None = Field(default=None, exclude=True)
    """Stage-1 heuristic; default: :data:`~hia_chain.factory.DEFAULT_HEURISTIC` (it reads the
    instructions each candidate adds). Pass a
    :class:`~hia_chain.scorers.learned.LearnedHeuristic` to learn this model's habits online."""
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
    """What ``response_metadata["hia"]`` keeps: ``full`` (every candidate), ``summary``
    (no candidate texts) or ``none`` (flags only); see :mod:`hia_chain.trace`."""
    response_rate_limiter: BaseRateLimiter | None = Field(default=None, exclude=True)
    """Acquired once per response call (each candidate, each retry). ``rate_limiter=`` on the
    aligned model is moved here: LangChain would acquire it once per aligned request."""

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
            from hia_chain.factory import DEFAULT_HEURISTIC, heuristic  # factory imports us

            self.heuristic = heuristic(DEFAULT_HEURISTIC, self.objectives)
        if self.max_tokens is None:
            self.max_tokens = own_max_tokens(self.model)
        if self.rate_limiter is not None:
            # One acquire per response call (each candidate, each retry), not one per request.
            self.response_rate_limiter, self.rate_limiter = self.rate_limiter, None
        optimizer = self.optimizer if _is_chat_model(self.model) else _Uncapped(self.optimizer)
        self._search = HIASearch(self.objectives, self.scorers, optimizer, self.heuristic)
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
            **{k: getattr(self, k) for k in SETTING_NAMES},
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        inner = _unbound(self.model)
        own = {"goal", *SETTING_NAMES}
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
        values = {k: overrides.get(k, getattr(self, k)) for k in SETTING_NAMES}
        return SearchSettings(**values)

    def _split_kwargs(
        self, kwargs: dict[str, Any]
    ) -> tuple[dict[str, float], SearchSettings, dict[str, Any]]:
        check_names(kwargs, ("goal", *SETTING_NAMES))  # a misspelled setting is not a model kwarg
        overrides = {k: kwargs.pop(k) for k in list(kwargs) if k in SETTING_NAMES}
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
            known = ", ".join(("goal", *SETTING_NAMES))
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
        if settings.max_tokens is not None and settings.max_tokens != own_max_tokens(self.model):
            passthrough["max_tokens"] = settings.max_tokens  # the bound the budget reserves
        caller = caller_config.get()
        pool = run_budget(caller, self.agent_budget, self.shared_budget)
        policy, decision = decide_step(steps, messages, self.model)
        continuing = continues_after_tool(messages)
        index, prompt = last_human(messages)
        await check_fits(self.model, prompt, settings.max_tokens)  # before any call is made
        chain = await _start_chain(run_manager, prompt, goal)
        context = RunContext(
            budget=Budget(),
            run_manager=chain,
            sync=sync,
            fixed_input_chars=fixed_chars(self.model, messages, index),
            caller=caller,
        )
        model = uncached(self.model)  # every candidate a real call, never a cached copy
        limiter = self.response_rate_limiter
        info: dict[str, Any] = {
            "steps": policy,
            "decision": decision,
            "continuation": continuing,
            "budget_scope": budget_scope(caller, self.agent_budget, self.shared_budget),
        }

        async def respond(request: Request) -> Response:
            sent = candidate_messages(messages, index, prompt, request, continuing=continuing)
            kwargs = {**passthrough, **request.model_kwargs()}  # a candidate's own cap
            if limiter is not None:
                await limiter.aacquire(blocking=True)
            message = await context.ainvoke(model, sent, "response", stop=stop, **kwargs)
            if request.max_tokens is not None:
                message = cut_capped(message)
            return Response.from_message(message, scored_text(message))

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
                result = await exhausted_step(prompt, goal, settings, context, exc)
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
            usage_metadata=sum_usage(result),
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
                announced(result, run_manager.run_id).text, chunk=answer_chunk(result)
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

        # On a worker thread with its own loop when called from inside a running one (e.g.
        # Jupyter), with the caller's context, which carries its config.
        result = self._to_result(*run_sync(main))
        if run_manager is not None:
            run_manager.on_llm_new_token(
                announced(result, run_manager.run_id).text, chunk=answer_chunk(result)
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
        yield as_chunk(message)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        message = await self.ainvoke(input, config, stop=stop, **kwargs)
        yield as_chunk(message)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        result = self._generate(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=as_chunk(result.generations[0].message))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        result = await self._agenerate(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(message=as_chunk(result.generations[0].message))


def _check_constructor(data: dict[str, Any]) -> None:
    """Names and search settings checked as a per-call override is (the same ConfigError)."""
    known = set()
    for name, info in AlignedChatModel.model_fields.items():
        known.add(name)
        if info.alias:
            known.add(info.alias)
    check_names(data, known)
    SearchSettings(**{k: data[k] for k in SETTING_NAMES if k in data})


def _unbound(model: Runnable[Any, Any]) -> Runnable[Any, Any]:
    """The chat model under any ``RunnableBinding`` layers (e.g. from ``bind_tools``)."""
    while isinstance(model, RunnableBinding):
        model = model.bound
    return model


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


class _Uncapped(PromptOptimizer):
    """``optimizer``'s proposals less those with an output cap: a response model that is not
    a chat model (a function, a chain) takes no ``max_tokens``."""

    def __init__(self, optimizer: PromptOptimizer) -> None:
        self.optimizer = optimizer
        self.model_calls_per_round = optimizer.model_calls_per_round

    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        proposals = await self.optimizer.apropose(request, context)
        return [p for p in proposals if p.max_tokens is None]


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

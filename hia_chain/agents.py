"""Agents: which steps are aligned, and one budget for every step of a run or a thread.

An agent (LangGraph's ``create_react_agent``, ``langchain.agents.create_agent``, any
StateGraph) calls its chat model once per step. Most steps only choose a tool; aligning them
would pay the whole budget for arguments nobody reads. So the step policy decides per call:

* ``"final"`` (the default when tools are bound and the model may choose): one call is sent
  as is; an answer that calls a tool passes through at that one call, and a text answer
  (the agent's final answer) is aligned, that call counting as the original prompt's
  candidate, so the step spends ``budget`` calls in all.
* ``"all"`` (the default otherwise, and when a tool is forced, as in
  ``with_structured_output``): every step is aligned, tool arguments included.
* a callable ``(messages) -> "final" | "all" | "pass"``; ``"pass"`` is one plain call.

A step whose last message is a tool result continues the conversation: the goal's
instructions go into the system message (added if there is none), never into a rewrite of
an earlier human turn.

A budget for the whole run or thread (:class:`ThreadBudgets`, or any budget passed as
``config={"configurable": {"hia_budget": ...}}``) is the parent of every step's own budget,
so no step, and no run, can overspend it. When it runs dry the agent gets the best answer
measured so far (or an empty answer when nothing could be paid for) with
``response_metadata["hia"]["budget_exhausted"]`` set, never an unbudgeted call.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage, ToolMessage
from langchain_core.runnables import Runnable, RunnableBinding, RunnableConfig

from hia_chain.budget import BaseBudget, Budget, Limits, Price
from hia_chain.errors import ConfigError

__all__ = [
    "BUDGET_KEY",
    "StepDecision",
    "StepPolicy",
    "ThreadBudgets",
    "continues_after_tool",
    "decide_step",
    "run_budget",
]

StepDecision = Literal["final", "all", "pass"]
"""How one agent step is answered: align a final answer only, align it whatever it is, or
send it once unaligned."""
StepPolicy = Literal["final", "all"] | Callable[[Sequence[BaseMessage]], StepDecision]
"""The ``steps=`` setting: a decision for every step, or a function of the step's messages."""

BUDGET_KEY = "hia_budget"
"""The ``configurable`` key of a run's budget: a budget, or a :class:`ThreadBudgets`."""

_DECISIONS: tuple[StepDecision, ...] = ("final", "all", "pass")
_FREE_CHOICE = (None, "auto", "none", False)
"""``tool_choice`` values that leave the model free to answer in text."""

caller_config: contextvars.ContextVar[RunnableConfig | None] = contextvars.ContextVar(
    "hia_caller_config", default=None
)
"""The config the aligned model was invoked with. LangChain hands a chat model's
``_generate`` only callbacks, tags and metadata; the rest (``configurable``, the run name,
the recursion limit) travels here to the calls the search makes."""


class ThreadBudgets:
    """One budget per conversation thread, keyed by ``configurable["thread_id"]``.

    Every step of every run on a thread draws from that thread's budget, so a user's
    conversation has one cap however many turns and tool steps it takes. Pass it as the
    model's ``agent_budget`` or per run as ``configurable={"hia_budget": ...}``.

    Args:
        calls: Response-model calls per thread.
        tokens: Response-model tokens per thread.
        cost: Response-model cost per thread (needs ``prices``).
        limits: Per-role caps per thread, e.g. ``{"judge": Limits(calls=20)}``.
        prices: Per-role prices.
        parent: A pool above every thread (e.g. the whole service's budget).
        factory: Makes a thread's budget instead (e.g. a ``RedisBudget`` keyed by the
            thread, shared by many processes); the caps above are then unused.
        key: The ``configurable`` key that names the thread.

    In-process state: a thread's budget lives as long as this object (use ``factory`` with a
    shared store for many processes or restarts).
    """

    def __init__(
        self,
        calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        *,
        limits: Mapping[str, Limits] | None = None,
        prices: Mapping[str, Price] | None = None,
        parent: BaseBudget | None = None,
        factory: Callable[[Hashable], BaseBudget] | None = None,
        key: str = "thread_id",
    ) -> None:
        if factory is None and calls is None and tokens is None and cost is None:
            msg = "ThreadBudgets needs a cap: pass `calls=`, `tokens=` or `cost=` (or `factory=`)."
            raise ConfigError(msg)
        if factory is None:
            Budget(calls, tokens, cost, limits=limits, prices=prices, parent=parent)  # validate now

        def make(_: Hashable) -> BaseBudget:
            return Budget(calls, tokens, cost, limits=limits, prices=prices, parent=parent)

        self._make = factory or make
        self.key = key
        self._budgets: dict[Hashable, BaseBudget] = {}
        self._lock = threading.Lock()

    def __getitem__(self, thread: Hashable) -> BaseBudget:
        """The budget of ``thread``, made on first use."""
        with self._lock:
            budget = self._budgets.get(thread)
            if budget is None:
                budget = self._budgets[thread] = self._make(thread)
            return budget

    def __contains__(self, thread: object) -> bool:
        return thread in self._budgets

    def for_config(self, config: Mapping[str, Any] | None) -> BaseBudget:
        """The budget of the thread named in ``config``.

        Raises:
            ConfigError: the config names no thread (no thread, no cap, so no call).
        """
        configurable = (config or {}).get("configurable") or {}
        thread = configurable.get(self.key)
        if thread is None:
            msg = (
                f"A per-thread budget needs the thread: invoke with "
                f'config={{"configurable": {{"{self.key}": ...}}}}.'
            )
            raise ConfigError(msg)
        return self[thread]


def run_budget(
    config: Mapping[str, Any] | None,
    model_budget: BaseBudget | ThreadBudgets | None,
    shared: BaseBudget | None,
) -> BaseBudget | None:
    """The budget every step of this run draws from, if the agent has one.

    ``configurable["hia_budget"]`` wins over the model's ``agent_budget``. A run budget must
    sit under the model's ``shared_budget`` (have it as an ancestor), else the run could
    spend past the shared pool.

    Raises:
        ConfigError: a bad ``hia_budget`` value, or a run budget outside the shared pool.
    """
    configurable = (config or {}).get("configurable") or {}
    given = configurable.get(BUDGET_KEY, model_budget)
    if given is None:
        return None
    if isinstance(given, ThreadBudgets):
        given = given.for_config(config)
    if not isinstance(given, BaseBudget):
        msg = (
            f'`configurable["{BUDGET_KEY}"]` must be a Budget (or ThreadBudgets), got '
            f"{type(given).__name__}: e.g. {{'{BUDGET_KEY}': Budget(calls=6)}}."
        )
        raise ConfigError(msg)
    if shared is not None and shared not in given.chain():
        msg = (
            "The run's budget is outside the model's `shared_budget`: make the pool its "
            "parent, e.g. Budget(calls=6, parent=pool), so both caps hold."
        )
        raise ConfigError(msg)
    return given


def _bound_kwargs(model: Runnable[Any, Any]) -> dict[str, Any]:
    """Every keyword bound at any ``RunnableBinding`` layer (outer layers win)."""
    found: dict[str, Any] = {}
    while isinstance(model, RunnableBinding):
        for k, v in model.kwargs.items():
            found.setdefault(k, v)
        model = model.bound
    return found


def default_steps(model: Runnable[Any, Any]) -> Literal["final", "all"]:
    """``final`` when tools are bound and the model may answer in text; else ``all``."""
    bound = _bound_kwargs(model)
    if not bound.get("tools") or "ls_structured_output_format" in bound:
        return "all"
    return "final" if bound.get("tool_choice") in _FREE_CHOICE else "all"


def decide_step(
    steps: StepPolicy | None, messages: Sequence[BaseMessage], model: Runnable[Any, Any]
) -> tuple[str, StepDecision]:
    """The policy's name (for the trace) and its decision for this step.

    Raises:
        ConfigError: an unknown policy, or a callable that returned something else.
    """
    if steps is None:
        steps = default_steps(model)
    if callable(steps):
        decision = steps(messages)
        name = getattr(steps, "__name__", type(steps).__name__)
        if decision not in _DECISIONS:
            msg = f"The `steps` function {name} returned {decision!r}; return one of {_DECISIONS}."
            raise ConfigError(msg)
        return name, decision
    if steps not in ("final", "all"):
        msg = f"`steps` must be 'final', 'all' or a function of the messages, got {steps!r}."
        raise ConfigError(msg)
    return steps, steps


def continues_after_tool(messages: Sequence[BaseMessage]) -> bool:
    """The step answers tool results: its last message is a ``ToolMessage``."""
    return bool(messages) and isinstance(messages[-1], ToolMessage)

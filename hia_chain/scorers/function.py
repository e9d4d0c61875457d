"""Scorers and heuristics from any callable or LangChain Runnable.

The escape hatch for everything the package does not ship: a regex, a classifier, a remote
service. The wrapped callable may be sync or async (an awaitable result is awaited), or a
Runnable (called with ``ainvoke`` on a dict). Its output is validated like every scorer's: a
missing key, NaN or a non-number raises :class:`~hia_chain.errors.RewardModelError` naming the
scorer and the key, instead of flowing into the reward as garbage.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeAlias, TypeVar

from langchain_core.runnables import Runnable

from hia_chain.context import RunContext
from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective
from hia_chain.scorers._parse import map_bounded
from hia_chain.scorers.base import Heuristic, Prediction, ReferenceScorer, check_batch

__all__ = ["FunctionHeuristic", "FunctionScorer", "HeuristicFn", "ScoreFn"]

ScoreFn: TypeAlias = (
    Callable[[str, str], Mapping[str, float] | Awaitable[Mapping[str, float]]]
    | Runnable[dict[str, str], Any]
)
"""``(prompt, response) -> {objective: score}``, sync or async, or a Runnable taking
``{"prompt": ..., "response": ...}``."""
HeuristicFn: TypeAlias = (
    Callable[
        [str, str],
        Mapping[str, float] | Prediction | Awaitable[Mapping[str, float] | Prediction],
    ]
    | Runnable[dict[str, str], Any]
)
"""``(original, candidate) -> {objective: score}`` (or a :class:`Prediction`), sync or async,
or a Runnable taking ``{"original": ..., "candidate": ...}``."""


_F = TypeVar("_F")


def _names(objectives: Sequence[str | Objective], field: str) -> tuple[str, ...]:
    names = tuple(o.name if isinstance(o, Objective) else o for o in objectives)
    if not names or not all(isinstance(n, str) and n for n in names):
        msg = f"`{field}` must list at least one objective name, got {list(objectives)!r}."
        raise ConfigError(msg)
    if len(set(names)) != len(names):
        msg = f"`{field}` has duplicate names {list(names)}; give each objective once."
        raise ConfigError(msg)
    return names


def _check_fn(fn: _F) -> _F:
    if not callable(fn) and not isinstance(fn, Runnable):
        msg = f"`fn` must be a callable or a Runnable, got {type(fn).__name__}."
        raise ConfigError(msg)
    return fn


def _check_concurrency(value: int) -> int:
    if value < 1:
        msg = f"`max_concurrency` must be >= 1, got {value}."
        raise ConfigError(msg)
    return value


async def _call(
    fn: Any, args: tuple[str, str], keys: tuple[str, str], context: RunContext | None, tag: str
) -> Any:
    """Call a Runnable with a dict (under the run's child config), else the callable itself."""
    if isinstance(fn, Runnable):
        payload = dict(zip(keys, args, strict=True))
        if context is None:
            return await fn.ainvoke(payload)
        return await context.ainvoke(fn, payload, tag)
    result = fn(*args)
    if inspect.isawaitable(result):
        result = await result
    return result


def _mapping(value: Any, source: str) -> Mapping[str, float]:
    if not isinstance(value, Mapping):
        msg = f"{source} returned {type(value).__name__}, expected a mapping of objective to score."
        raise RewardModelError(msg)
    return value


class FunctionScorer(ReferenceScorer):
    """A reference scorer from ``(prompt, response) -> {objective: score}``.

    Responses are scored concurrently (at most ``max_concurrency`` at a time) when the
    callable is async or a Runnable; a sync callable runs inline on the event loop, so keep it
    fast or make it async. Scores are not clamped: return them on the objective's scale.

    Args:
        fn: A sync or async callable, or a Runnable taking ``{"prompt", "response"}``.
        objectives: The objective names (or Objectives) ``fn`` returns.
        name: Shown in error messages (default: the callable's name).
        max_concurrency: Most calls in flight at once.
        model_calls_per_item: Model calls ``fn`` makes per response, for dry-run planning.

    Raises:
        ConfigError: no objectives, duplicates, or bad ``max_concurrency``.
    """

    def __init__(
        self,
        fn: ScoreFn,
        objectives: Sequence[str | Objective],
        *,
        name: str | None = None,
        max_concurrency: int = 8,
        model_calls_per_item: int = 0,
    ) -> None:
        self.fn = _check_fn(fn)
        self.objectives = _names(objectives, "objectives")
        self.name = name or getattr(fn, "__name__", None) or type(fn).__name__
        self.max_concurrency = _check_concurrency(max_concurrency)
        self.model_calls_per_item = model_calls_per_item

    @property
    def _source(self) -> str:
        return f"FunctionScorer({self.name!r})"

    async def ascore(
        self, prompt: str, responses: Sequence[str], context: RunContext | None = None
    ) -> list[dict[str, float]]:
        """Score each response with ``fn``.

        Raises:
            RewardModelError: ``fn`` returned a non-mapping, or lacks a finite score for an
                objective (the message names this scorer and the key).
        """

        async def one(response: str) -> Mapping[str, float]:
            value = await _call(
                self.fn, (prompt, response), ("prompt", "response"), context, "scorer"
            )
            return _mapping(value, self._source)

        results = await map_bounded(one, list(responses), self.max_concurrency)
        return check_batch(results, len(responses), self.objectives, source=self._source)


class FunctionHeuristic(Heuristic):
    """A stage-1 heuristic from ``(original, candidate) -> {objective: score}``.

    ``fn`` may also return a :class:`Prediction` to report its own uncertainty. It must cover
    every objective the search asks for.

    Args:
        fn: A sync or async callable, or a Runnable taking ``{"original", "candidate"}``.
        name: Shown in traces and error messages.
        max_concurrency: Most calls in flight at once.
        observe: Optional ``(original, candidate, measured) -> None`` called with each
            stage-2 measurement, for callables that learn.
        model_calls_per_item: Model calls ``fn`` makes per candidate, for dry-run planning.

    Raises:
        ConfigError: bad ``max_concurrency``.
    """

    def __init__(
        self,
        fn: HeuristicFn,
        *,
        name: str = "function",
        max_concurrency: int = 8,
        observe: Callable[[str, str, Mapping[str, float]], None] | None = None,
        model_calls_per_item: int = 0,
    ) -> None:
        self.fn = _check_fn(fn)
        self.name = name
        self.max_concurrency = _check_concurrency(max_concurrency)
        self._observe = observe
        self.model_calls_per_item = model_calls_per_item

    async def apredict(
        self,
        original: str,
        candidates: Sequence[str],
        objectives: Sequence[str],
        context: RunContext | None = None,
    ) -> list[Prediction]:
        """Predict each candidate with ``fn``.

        Raises:
            RewardModelError: a non-mapping result, or a missing or non-finite score (the
                message names this heuristic and the key).
        """
        source = f"FunctionHeuristic({self.name!r})"

        async def one(candidate: str) -> Prediction:
            value = await _call(
                self.fn, (original, candidate), ("original", "candidate"), context, "heuristic"
            )
            if isinstance(value, Prediction):
                return value
            return Prediction(scores=_mapping(value, source))

        preds = await map_bounded(one, list(candidates), self.max_concurrency)
        checked = check_batch([p.scores for p in preds], len(candidates), objectives, source=source)
        out = []
        for pred, scores in zip(preds, checked, strict=True):
            unc = {k: float(v) for k, v in pred.uncertainty.items() if k in scores}
            out.append(Prediction(scores=scores, uncertainty=unc))
        return out

    def observe(self, original: str, candidate: str, measured: Mapping[str, float]) -> None:
        """Forward a stage-2 measurement to the ``observe`` callable, if one was given."""
        if self._observe is not None:
            self._observe(original, candidate, measured)

"""The HIA search: propose → stage 1 (heuristic filter) → stage 2 (budgeted calls) → select.

Independent of LangChain message objects: the response model is a :data:`Responder` that
takes a :class:`Request` (the user's turn, an optional system instruction and output cap),
so the same engine serves :class:`~hia_chain.AlignedChatModel`, the CLI, the benchmark and
the OpenAI-compatible server.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hia_chain.budget import ROLES, BaseBudget, Budget
from hia_chain.calls import TokenBound
from hia_chain.context import RunContext, estimate_tokens
from hia_chain.errors import AllCandidatesFilteredError, BudgetExceededError, ConfigError
from hia_chain.goals import Objective, RewardFunction, get_reward_function, validate_goal
from hia_chain.optimizer.base import Feedback, OptimizeRequest, PromptOptimizer, Proposal
from hia_chain.scorers.base import Heuristic, ReferenceScorer
from hia_chain.search import stage1, stage2
from hia_chain.search.strategies import StopReason, Strategy
from hia_chain.search.types import (
    Candidate,
    Plan,
    Request,
    Responder,
    SearchResult,
    SearchSettings,
)

__all__ = ["HIASearch", "choice_key"]


@dataclass
class HIASearch:
    """One configured HIA pipeline; :meth:`run` serves any number of concurrent requests.

    Args:
        objectives: Every objective a goal may name.
        scorers: Reference scorers r(P, y); together they must cover every objective. In
            priority order: the first that measures an objective gives its score.
        optimizer: Proposes candidate prompts (not used by ``search="sample"``).
        heuristic: Predicts r̂ of a prompt for the stage-1 filter (needed by ``heuristic``).
    """

    objectives: Sequence[Objective]
    scorers: Sequence[ReferenceScorer]
    optimizer: PromptOptimizer
    heuristic: Heuristic | None = None

    def __post_init__(self) -> None:
        if not self.objectives:
            raise ConfigError("`objectives` is empty: give at least one Objective.")
        names = [o.name for o in self.objectives]
        if len(set(names)) != len(names):
            msg = f"`objectives` has duplicate names: {names}."
            raise ConfigError(msg)
        covered = {n for s in self.scorers for n in s.objectives}
        missing = [n for n in names if n not in covered]
        if missing:
            msg = (
                f"No reference scorer measures {missing}: add a scorer for each objective "
                "(e.g. FunctionScorer or LLMJudgeScorer)."
            )
            raise ConfigError(msg)

    def plan(self, settings: SearchSettings, *, rounds: int | None = None) -> Plan:
        """The most this request can spend, per role, before anything is spent.

        Upper bounds, from the same :class:`Strategy` the search follows: the first round
        asks the optimizer once and drafts at most N candidates; each later round asks once
        per seed (the best answers so far) for its share of N.

        Args:
            settings: The request's settings.
            rounds: Price this many rounds instead of the most a request can take
                (``settings.rounds`` is the usual number: every round sends its K calls).
        """
        strategy = settings.strategy
        rounds = strategy.max_rounds(settings.budget) if rounds is None else rounds
        seeds = strategy.seeds(settings.per_round)
        later = max(0, rounds - 1)
        asks = 1 + later * seeds if strategy.proposes and rounds else 0
        drafted = settings.n + later * seeds * -(-settings.n // seeds) if rounds else 0
        per_draft = (
            self.heuristic.model_calls_per_item
            if self.heuristic is not None and _filters_by_heuristic(settings)
            else 0
        )
        draft_calls = drafted * per_draft
        judge_per_item = sum(s.model_calls_per_item for s in self.scorers)
        draft_judge = sum(s.model_calls_per_item for s in getattr(self.heuristic, "scorers", ()))
        bound = estimate_tokens("", settings.max_tokens)  # + the prompt's UTF-8 bytes, per call
        return Plan(
            response_calls=settings.budget,
            response_tokens=None if bound is None else settings.budget * bound,
            optimizer_calls=asks * self.optimizer.model_calls_per_round,
            draft_calls=draft_calls,
            judge_calls=settings.budget * judge_per_item + draft_calls * draft_judge,
            rounds=rounds,
            candidates_per_round=settings.n,
        )

    async def run(
        self,
        prompt: str,
        goal: dict[str, float],
        respond: Responder,
        settings: SearchSettings,
        *,
        shared: BaseBudget | None = None,
        context: RunContext | None = None,
    ) -> SearchResult:
        """Search for the best-aligned answer to ``prompt`` within ``settings.budget`` calls.

        Raises:
            ConfigError: empty prompt, bad goal, or a heuristic filter without a heuristic.
            BudgetExceededError: the budget cannot pay for a single response call.
            AllCandidatesFilteredError: nothing could be sent.
            Exception: the response model's error, unchanged, when no answer was measured
                (a call that fails while others succeed is recorded on its candidate).
        """
        request = await self._start(prompt, goal, settings, shared, context)
        while await self._round(request, respond):
            pass
        return await self._finish(request)

    async def _start(
        self,
        prompt: str,
        goal: dict[str, float],
        settings: SearchSettings,
        shared: BaseBudget | None,
        context: RunContext | None,
    ) -> _Request:
        """Validate the request, and check that the budget can pay for one call, before any
        work is done."""
        if not prompt or not prompt.strip():
            raise ConfigError("The prompt is empty: pass the user's request as text.")
        goal = validate_goal(self.objectives, goal)
        if self.heuristic is None and _filters_by_heuristic(settings):
            msg = "filter='heuristic' needs a `heuristic`; pass one or use filter='random'."
            raise ConfigError(msg)
        reward = get_reward_function(settings.reward, self.objectives)
        budget = Budget(calls=settings.budget, parent=shared)
        ctx = RunContext(budget=budget) if context is None else context
        ctx.budget = budget
        ctx.timeout = settings.timeout
        if settings.deadline is not None:
            ctx.deadline = time.monotonic() + settings.deadline
        bound = stage2.response_bound(Request(prompt), settings, ctx)
        if not await stage2.can_pay(budget, bound):
            msg = "The budget cannot pay for a single response call; nothing was sent."
            raise BudgetExceededError(msg)
        return _Request(
            prompt=prompt,
            goal=goal,
            settings=settings,
            strategy=settings.strategy,
            reward=reward,
            budget=budget,
            ctx=ctx,
            bound=bound,
            rng=random.Random(settings.seed),
            active=[o for o in self.objectives if o.name in goal],
        )

    async def _round(self, r: _Request, respond: Responder) -> bool:
        """One round: propose, filter, send, measure. Returns whether another may follow."""
        s = r.settings
        if r.rounds >= r.strategy.max_rounds(s.budget) or r.budget.usage().calls >= s.budget:
            return False
        left = await r.budget.aremaining_calls("response") or 0
        if not left or not await stage2.pool_can_pay(r.budget, r.bound):
            return r.stop(StopReason.BUDGET_EXHAUSTED, exhausted=True)  # the pool ran dry
        remaining = r.ctx.time_left()
        if remaining is not None and remaining <= 0:
            return r.stop(StopReason.DEADLINE)
        chosen = await self._choose(r, min(s.per_round, left))
        if chosen is None:
            return False
        proposed, batch = chosen
        if not batch:
            return r.stop(StopReason.NO_NEW_CANDIDATES)
        sending = [c.id for c in batch]
        await r.ctx.event(
            "hia_round", {"round": r.rounds, "proposed": proposed, "sending": sending}
        )
        outcome = await stage2.send(batch, respond, s, r.ctx)
        r.exhausted |= outcome.exhausted
        r.failures.extend(outcome.failures)
        r.errors.extend(outcome.errors)
        if outcome.errors and not any(c.response is not None for c in r.candidates):
            return r.stop(StopReason.MODEL_ERROR)  # nothing has worked yet (a bad key?)
        judged_short = await stage2.measure(r.prompt, batch, self.scorers, r.goal, r.reward, r.ctx)
        if judged_short:  # the judge's own cap
            r.stop(StopReason.REFUSED, judged_short, exhausted=True)
        for c in batch:
            if c.measured is not None and self.heuristic is not None:
                self.heuristic.observe(r.prompt, c.text, c.measured)
        r.rounds += 1
        measured = [c for c in r.candidates if c.measured is not None]
        measured.sort(key=lambda c: choice_key(c, r.reward, r.goal), reverse=True)
        r.beams = measured[: r.strategy.seeds(s.per_round)]
        if r.exhausted and r.stopped is StopReason.BUDGET_SPENT:
            r.stop(StopReason.BUDGET_EXHAUSTED)  # no more specific reason was recorded
        return not r.exhausted

    async def _choose(self, r: _Request, k: int) -> tuple[int, list[Candidate]] | None:
        """This round's proposals and the K (at most) to send; ``None`` when stage 1 itself
        was refused (e.g. a judge scoring drafts ran out)."""
        fresh, refused = await self._propose(r)
        if refused:  # the optimizer's own cap: send what it did propose, then stop
            r.stop(StopReason.REFUSED, refused, exhausted=True)
        r.candidates.extend(fresh)
        pool = [c for c in fresh if c.rejected is None]
        pool += r.resample(k - len(pool))
        if not r.strategy.proposes:
            return len(fresh), pool[:k]
        try:
            batch = await stage1.select(
                r.prompt,
                pool,
                k,
                filter=r.settings.filter,
                heuristic=self.heuristic,
                objectives=r.active,
                goal=r.goal,
                reward=r.reward,
                rng=r.rng,
                exploration=r.settings.exploration,
                context=r.ctx,
            )
        except BudgetExceededError as exc:
            r.stop(StopReason.REFUSED, str(exc), exhausted=True)
            return None
        return len(fresh), batch

    async def _finish(self, r: _Request) -> SearchResult:
        """The best measured answer with every candidate and what was spent.

        Raises:
            Exception: why nothing was measured (see :meth:`run`).
        """
        measured = [c for c in r.candidates if c.measured is not None]
        if not measured:
            raise _nothing_measured(r)
        best = max(measured, key=lambda c: choice_key(c, r.reward, r.goal))
        usage: dict[str, dict[str, float | int]] = {
            role: r.budget.usage(role).as_dict() for role in ROLES
        }
        await r.ctx.event(
            "hia_done",
            {"best": best.id, "reward": best.reward, "calls": usage["response"]["calls"]},
        )
        return SearchResult(
            best=best,
            candidates=r.candidates,
            settings=r.settings,
            goal=r.goal,
            usage=usage,
            rounds=r.rounds,
            budget_exhausted=r.exhausted,
            stopped=r.stopped,
            stop_detail=r.detail,
        )

    async def _propose(self, r: _Request) -> tuple[list[Candidate], str | None]:
        """New candidates for this round, validated against earlier ones, and why the
        optimizer stopped short (its own budget ran out), if it did."""
        next_id = len(r.candidates)
        bound = r.settings.max_tokens

        def make(p: Proposal) -> Candidate:
            nonlocal next_id
            next_id += 1
            cap = p.max_tokens
            if bound is not None and cap is not None:
                cap = min(cap, bound)
            return Candidate(
                id=next_id - 1,
                prompt=p.prompt,
                origin=p.origin,
                round=r.rounds,
                meta=dict(p.meta),
                system=p.system,
                max_tokens=None if cap == bound else cap,  # at the bound, the request's own
            )

        original = Proposal(r.prompt, "original")
        if not r.strategy.proposes:
            return [make(original) for _ in range(r.settings.per_round)], None
        fresh: list[Candidate] = []
        if r.rounds == 0:
            fresh.append(make(original))
        seeds: list[Candidate | None] = list(r.beams) if r.beams else [None]
        share = max(1, -(-(r.settings.n - len(fresh)) // len(seeds)))
        seed = r.settings.seed
        refused = None
        for parent in seeds:
            feedback = _feedback(parent) if parent else None
            request = OptimizeRequest(
                prompt=r.prompt,
                objectives=tuple(r.active),
                goal=r.goal,
                n=share,
                feedback=feedback,
                seed=None if seed is None else seed + r.rounds,
                avoid=frozenset(c.text for c in r.candidates),
            )
            try:
                proposals = await self.optimizer.apropose(request, r.ctx)
            except BudgetExceededError as exc:  # keep what earlier seeds (and the original) gave
                refused = str(exc)
                break
            fresh.extend(make(p) for p in proposals)
        stage1.validate(r.prompt, fresh, r.candidates)
        traces = [c.trace() for c in fresh]
        await r.ctx.event("hia_proposed", {"round": r.rounds, "candidates": traces})
        return fresh, refused


@dataclass
class _Request:
    """One request while it searches: what it asked, what it found, and why it stops."""

    prompt: str
    goal: dict[str, float]
    settings: SearchSettings
    strategy: Strategy
    reward: RewardFunction
    budget: Budget
    ctx: RunContext
    bound: TokenBound | None
    rng: random.Random
    active: list[Objective]
    candidates: list[Candidate] = field(default_factory=list)
    beams: list[Candidate] = field(default_factory=list)
    """The best measured candidates so far, which seed the next round."""
    rounds: int = 0
    exhausted: bool = False
    stopped: StopReason = StopReason.BUDGET_SPENT
    detail: str | None = None
    failures: list[BaseException] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def stop(
        self, reason: StopReason, detail: str | None = None, *, exhausted: bool = False
    ) -> bool:
        """Record why the search stops (now, or after this round). Returns ``False``, so a
        round can ``return r.stop(...)``."""
        self.stopped, self.detail = reason, detail
        self.exhausted |= exhausted
        return False

    def resample(self, missing: int) -> list[Candidate]:
        """Too few new prompts: spend the calls re-sampling the best prompts so far."""
        again: list[Candidate] = []
        for j in range(max(0, missing) if self.beams else 0):
            parent = self.beams[j % len(self.beams)]
            again.append(
                Candidate(
                    id=len(self.candidates),
                    prompt=parent.prompt,
                    origin="resample",
                    round=self.rounds,
                    meta=dict(parent.meta),
                    system=parent.system,
                    max_tokens=parent.max_tokens,
                )
            )
            self.candidates.append(again[-1])
        return again


def _filters_by_heuristic(settings: SearchSettings) -> bool:
    """Whether stage 1 ranks this search's proposals with the heuristic."""
    return settings.filter == "heuristic" and settings.strategy.proposes


def _nothing_measured(r: _Request) -> BaseException:
    """What to raise when no answer was measured: the model's own error if there was one."""
    if r.errors:
        return r.errors[0]  # the model's own error, unchanged
    if r.failures:
        return r.failures[-1]  # transient errors that outlived every retry, unchanged
    if r.exhausted:
        msg = f"No answer could be measured within the budget: {r.detail or r.stopped.value}"
        return BudgetExceededError(msg)
    if r.stopped is StopReason.DEADLINE:
        msg = (
            f"The request's deadline ({r.settings.deadline:g} s) passed before any "
            "answer was measured: raise `deadline` or lower `budget`."
        )
        return TimeoutError(msg)
    return AllCandidatesFilteredError("Every candidate prompt was rejected in stage 1.")


def choice_key(c: Candidate, reward: RewardFunction, goal: dict[str, float]) -> tuple[Any, ...]:
    """Rank of a measured candidate: any non-empty answer before every empty one."""
    return (not c.empty, reward.rank_key(goal, c.measured or {}))


def _feedback(parent: Candidate) -> Feedback:
    """The best candidate so far as one user turn, for a refinement round: its instruction
    appended where it was sent as a system message, its output cap in ``meta`` (an optimizer
    must not copy ``Candidate.text``'s markers into a prompt)."""
    prompt = parent.prompt if parent.system is None else f"{parent.prompt}\n\n{parent.system}"
    meta = {**parent.meta, "max_tokens": parent.max_tokens}
    return Feedback(prompt, parent.measured or {}, meta)

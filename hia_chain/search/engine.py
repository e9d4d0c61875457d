"""The HIA search: propose → stage 1 (heuristic filter) → stage 2 (budgeted calls) → select.

Independent of LangChain message objects: the response model is a :data:`Responder` that
takes a prompt string, so the same engine serves :class:`~hia_chain.AlignedChatModel`, the
CLI, the benchmark and a future OpenAI-compatible proxy.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hia_chain.budget import BaseBudget, Budget
from hia_chain.context import RunContext, estimate_tokens
from hia_chain.errors import AllCandidatesFilteredError, BudgetExceededError, ConfigError
from hia_chain.goals import Objective, RewardFunction, get_reward_function, validate_goal
from hia_chain.optimizer.base import Feedback, OptimizeRequest, PromptOptimizer
from hia_chain.scorers.base import Heuristic, ReferenceScorer
from hia_chain.search import stage1, stage2
from hia_chain.search.types import Candidate, Plan, Responder, SearchResult, SearchSettings

__all__ = ["HIASearch"]

logger = logging.getLogger(__name__)


@dataclass
class HIASearch:
    """One configured HIA pipeline; :meth:`run` serves any number of concurrent requests.

    Args:
        objectives: Every objective a goal may name.
        scorers: Reference scorers r(P, y); together they must cover every objective.
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

    def plan(self, settings: SearchSettings) -> Plan:
        """The most this request can spend, per role, before anything is spent.

        Upper bounds: a round that finds fewer new candidates than calls sends what it has
        and the next round spends the rest, so there are at most ``budget`` rounds; beam asks
        the optimizer once per beam.
        """
        sample = settings.search == "sample"
        rounds = 1 if sample else settings.budget
        seeds = settings.per_round if settings.search == "beam" else 1
        heuristic_calls = (
            self.heuristic.model_calls_per_item
            if self.heuristic and settings.filter == "heuristic" and not sample
            else 0
        )
        per_round = seeds * -(-settings.n // seeds)  # each beam asks for its share, rounded up
        draft_calls = rounds * per_round * heuristic_calls
        judge_per_item = sum(s.model_calls_per_item for s in self.scorers)
        draft_judge = sum(s.model_calls_per_item for s in getattr(self.heuristic, "scorers", ()))
        bound = estimate_tokens("", settings.max_tokens)  # + the prompt's UTF-8 bytes, per call
        return Plan(
            response_calls=settings.budget,
            response_tokens=None if bound is None else settings.budget * bound,
            optimizer_calls=0 if sample else rounds * seeds * self.optimizer.model_calls_per_round,
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
        if not prompt or not prompt.strip():
            raise ConfigError("The prompt is empty: pass the user's request as text.")
        goal = validate_goal(self.objectives, goal)
        if (
            settings.filter == "heuristic"
            and self.heuristic is None
            and settings.search != "sample"
        ):
            msg = "filter='heuristic' needs a `heuristic`; pass one or use filter='random'."
            raise ConfigError(msg)
        reward = get_reward_function(settings.reward, self.objectives)
        budget = Budget(calls=settings.budget, parent=shared)
        ctx = RunContext(budget=budget) if context is None else context
        ctx.budget = budget
        ctx.timeout = settings.timeout
        if settings.deadline is not None:
            ctx.deadline = time.monotonic() + settings.deadline
        bound = stage2.response_bound(prompt, settings, ctx)
        probe = await budget.areserve(
            "response",
            tokens=None if bound is None else bound.total,
            output_tokens=None if bound is None else bound.output,
        )
        if probe is None:
            msg = "The budget cannot pay for a single response call; nothing was sent."
            raise BudgetExceededError(msg)
        await budget.arelease(probe)

        rng = random.Random(settings.seed)
        active = [o for o in self.objectives if o.name in goal]
        candidates: list[Candidate] = []
        exhausted, stopped, rounds = False, "budget spent", 0
        failures: list[BaseException] = []
        errors: list[BaseException] = []
        beams: list[Candidate] = []
        while rounds < settings.budget and budget.usage().calls < settings.budget:
            left = await budget.aremaining_calls("response") or 0
            if not left or not await stage2.pool_can_pay(budget, bound):
                exhausted, stopped = True, "budget exhausted"  # the shared pool ran dry
                break
            remaining = ctx.time_left()
            if remaining is not None and remaining <= 0:
                stopped = "deadline"
                break
            k = min(settings.per_round, left)
            fresh, refused = await self._propose(
                prompt, goal, active, settings, rounds, beams, candidates, ctx
            )
            if refused:  # the optimizer's own cap: send what it did propose, then stop
                exhausted, stopped = True, refused
            candidates.extend(fresh)
            pool = [c for c in fresh if c.rejected is None]
            for j in range(max(0, k - len(pool)) if beams else 0):
                # Too few new prompts: spend the call re-sampling the best prompts so far.
                parent = beams[j % len(beams)]
                again = Candidate(
                    id=len(candidates),
                    prompt=parent.prompt,
                    origin="resample",
                    round=rounds,
                    meta=dict(parent.meta),
                )
                candidates.append(again)
                pool.append(again)
            if settings.search == "sample":
                batch = pool[:k]
            else:
                try:
                    batch = await stage1.select(
                        prompt,
                        pool,
                        k,
                        filter=settings.filter,
                        heuristic=self.heuristic,
                        objectives=active,
                        goal=goal,
                        reward=reward,
                        rng=rng,
                        exploration=settings.exploration,
                        context=ctx,
                    )
                except BudgetExceededError as exc:  # e.g. a judge scoring drafts ran out
                    exhausted, stopped = True, str(exc)
                    break
            if not batch:
                stopped = "no new candidates"
                break
            await ctx.event(
                "hia_round",
                {"round": rounds, "proposed": len(fresh), "sending": [c.id for c in batch]},
            )
            outcome = await stage2.send(batch, respond, settings, ctx)
            exhausted |= outcome.exhausted
            failures.extend(outcome.failures)
            errors.extend(outcome.errors)
            if outcome.errors and not any(c.response is not None for c in candidates):
                stopped = "model error"  # nothing has worked yet: e.g. a bad key; stop paying
                break
            judged_short = await stage2.measure(prompt, batch, self.scorers, goal, reward, ctx)
            if judged_short:  # the judge's own cap
                exhausted, stopped = True, judged_short
            for c in batch:
                if c.measured is not None and self.heuristic is not None:
                    self.heuristic.observe(prompt, c.prompt, c.measured)
            rounds += 1
            measured = [c for c in candidates if c.measured is not None]
            width = settings.per_round if settings.search == "beam" else 1
            beams = sorted(measured, key=lambda c: _choice_key(c, reward, goal), reverse=True)[
                :width
            ]
            if exhausted:
                if stopped == "budget spent":  # no more specific reason was recorded
                    stopped = "budget exhausted"
                break

        measured = [c for c in candidates if c.measured is not None]
        if not measured:
            if errors:
                raise errors[0]  # the model's own error, unchanged
            if failures:
                raise failures[-1]  # transient errors that outlived every retry, unchanged
            if exhausted:
                msg = f"No answer could be measured within the budget: {stopped}"
                raise BudgetExceededError(msg)
            if stopped == "deadline":
                msg = (
                    f"The request's deadline ({settings.deadline:g} s) passed before any "
                    "answer was measured: raise `deadline` or lower `budget`."
                )
                raise TimeoutError(msg)
            raise AllCandidatesFilteredError("Every candidate prompt was rejected in stage 1.")
        best = max(measured, key=lambda c: _choice_key(c, reward, goal))
        usage = {
            role: budget.usage(role).as_dict()
            for role in ("response", "optimizer", "judge", "draft")
        }
        await ctx.event(
            "hia_done",
            {"best": best.id, "reward": best.reward, "calls": usage["response"]["calls"]},
        )
        return SearchResult(
            best=best,
            candidates=candidates,
            settings=settings,
            goal=goal,
            usage=usage,
            rounds=rounds,
            budget_exhausted=exhausted,
            stopped=stopped,
        )

    async def _propose(
        self,
        prompt: str,
        goal: dict[str, float],
        active: list[Objective],
        settings: SearchSettings,
        round_: int,
        beams: list[Candidate],
        seen: list[Candidate],
        ctx: RunContext,
    ) -> tuple[list[Candidate], str | None]:
        """New candidates for this round, validated against earlier ones, and why the
        optimizer stopped short (its own budget ran out), if it did."""
        next_id = len(seen)

        def make(text: str, origin: str, meta: dict | None = None) -> Candidate:
            nonlocal next_id
            next_id += 1
            return Candidate(
                id=next_id - 1, prompt=text, origin=origin, round=round_, meta=dict(meta or {})
            )

        if settings.search == "sample":
            return [make(prompt, "original") for _ in range(settings.per_round)], None
        fresh: list[Candidate] = []
        if round_ == 0:
            fresh.append(make(prompt, "original"))
        seeds: list[Candidate | None] = list(beams) if beams else [None]
        share = max(1, -(-(settings.n - len(fresh)) // len(seeds)))
        refused = None
        for parent in seeds:
            feedback = (
                Feedback(parent.prompt, parent.measured or {}, parent.meta) if parent else None
            )
            request = OptimizeRequest(
                prompt=prompt,
                objectives=tuple(active),
                goal=goal,
                n=share,
                feedback=feedback,
                seed=None if settings.seed is None else settings.seed + round_,
                avoid=frozenset(c.prompt for c in seen),
            )
            try:
                proposals = await self.optimizer.apropose(request, ctx)
            except BudgetExceededError as exc:  # keep what earlier seeds (and the original) gave
                refused = str(exc)
                break
            for p in proposals:
                fresh.append(make(p.prompt, p.origin, dict(p.meta)))
        stage1.validate(prompt, fresh, seen)
        await ctx.event("hia_proposed", {"round": round_, "candidates": [c.trace() for c in fresh]})
        return fresh, refused


def _choice_key(c: Candidate, reward: RewardFunction, goal: dict[str, float]) -> tuple[Any, ...]:
    """Rank of a measured candidate: any non-empty answer before every empty one."""
    return (not c.empty, reward.rank_key(goal, c.measured or {}))

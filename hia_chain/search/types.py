"""Data passed between the search stages and returned to the caller."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from hia_chain.calls import Outcome
from hia_chain.errors import ConfigError
from hia_chain.goals import REWARD_NAMES, RewardName
from hia_chain.instructions import candidate_text
from hia_chain.search.strategies import STRATEGIES, StopReason, Strategy

__all__ = [
    "FILTERS",
    "SEARCHES",
    "SETTING_NAMES",
    "Candidate",
    "FilterName",
    "Placement",
    "Plan",
    "Request",
    "Responder",
    "Response",
    "SearchName",
    "SearchResult",
    "SearchSettings",
]

SearchName = Literal["bon", "greedy", "beam", "sample"]
"""A search kind; each has its :class:`~hia_chain.search.strategies.Strategy`."""
FilterName = Literal["heuristic", "random", "order"]
"""A stage-1 filter: ``heuristic`` is HIA, ``random`` and ``order`` the baselines."""
SEARCHES: tuple[SearchName, ...] = get_args(SearchName)
"""Every search kind, for choices (CLI, server) and validation."""
FILTERS: tuple[FilterName, ...] = get_args(FilterName)
"""Every stage-1 filter, for choices (CLI, server) and validation."""

MAX_BUDGET = 1000
"""Most response calls one request may be given: each call is a candidate kept in memory,
scored and traced, so more belongs in several requests."""
MAX_CANDIDATES = 2000
"""Most candidate prompts proposed per round (``candidates_per_round``, ``beam_width``)."""
MAX_CONCURRENCY = 1000
"""Most calls of one request in flight at once."""


@dataclass(frozen=True)
class Response:
    """One answer of the response model, with its token usage as the provider reported it."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    message: Any = None
    """The provider's message (e.g. an ``AIMessage``), returned as the final answer."""

    @classmethod
    def from_message(cls, message: Any, text: str | None = None) -> Response:
        """From a LangChain message: its text (or ``text``) and its ``usage_metadata``."""
        usage = getattr(message, "usage_metadata", None)
        return cls(
            text=message.text if text is None else text,
            input_tokens=usage["input_tokens"] if usage else None,
            output_tokens=usage["output_tokens"] if usage else None,
            message=message,
        )


Placement = Literal["user", "system"]
"""Where a candidate's instruction goes: in the user's turn, or in a system message."""


@dataclass(frozen=True)
class Request:
    """What one response call sends: the user's turn, and how the candidate differs.

    A responder that sends whole conversations (``AlignedChatModel``) puts ``system`` first,
    merged into the conversation's own system message if it has one.
    """

    prompt: str
    """The user's turn: the original prompt, or a rewrite of it."""
    system: str | None = None
    """An instruction to send as a system message, before the user's turn."""
    max_tokens: int | None = None
    """This call's output cap (never above the request's ``max_tokens``); ``None``: the
    request's own bound."""

    def messages(self) -> list[dict[str, str]]:
        """The call as role/content messages (OpenAI's shape; LangChain models take it)."""
        turn = [{"role": "user", "content": self.prompt}]
        return turn if self.system is None else [{"role": "system", "content": self.system}, *turn]

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for the model call: ``max_tokens`` when this call is capped."""
        return {} if self.max_tokens is None else {"max_tokens": self.max_tokens}


Responder = Callable[[Request], Awaitable[Response]]
"""Sends one request to the response model. The search owns budget and retries around it."""


@dataclass(frozen=True)
class SearchSettings:
    """How one request searches. Every field can be overridden per call."""

    search: SearchName = "bon"
    """``bon``: one round of ``budget`` calls; ``greedy``: rounds of one call refined with
    measured feedback; ``beam``: rounds of ``beam_width`` calls seeded by the best so far;
    ``sample``: best-of-N sampling of the original prompt (a baseline)."""
    filter: FilterName = "heuristic"
    """Stage-1 choice of which candidates to send: ``heuristic`` (HIA), or the baselines
    ``random`` (seeded) and ``order`` (optimizer order, original first)."""
    budget: int = 2
    """Calls to the response model for this request (the HIA budget unit)."""
    candidates_per_round: int | None = None
    """N, candidates proposed per round including the original; default max(8, 2K)."""
    beam_width: int = 2
    """Beams of ``search="beam"``: calls per round, and how many of the best answers seed
    the next round."""
    reward: RewardName = "euclidean"
    """R(G, r), how close scores are to the goal: ``euclidean``, ``max_error`` (the worst
    objective) or ``goal_completion`` (how many objectives are within tolerance)."""
    seed: int | None = None
    """Seeds the optimizer's proposals and the ``random`` filter; ``None``: unseeded."""
    max_concurrency: int = 8
    """Most response calls in flight at once for this request."""
    max_retries: int = 2
    """Retries of a transient error per candidate; every attempt is paid from the budget."""
    max_tokens: int | None = None
    """Bound on each response's output tokens; required when a token or cost cap applies."""
    exploration: float = 0.0
    """Optimism for uncertain heuristic predictions: rank by R(G, r̂ ± κσ toward the goal)."""
    timeout: float | None = 120.0
    """Seconds one model call may take before it is abandoned (then retried if the budget
    allows); ``None`` leaves it to the model's client."""
    deadline: float | None = None
    """Seconds the whole request may take: no call or retry starts that could not finish by
    then, and the best answer measured so far is returned."""

    def __post_init__(self) -> None:
        if self.search not in SEARCHES:
            msg = f"`search` must be one of {', '.join(SEARCHES)}; got {self.search!r}."
            raise ConfigError(msg)
        if self.filter not in FILTERS:
            msg = f"`filter` must be one of {', '.join(FILTERS)}; got {self.filter!r}."
            raise ConfigError(msg)
        if self.reward not in REWARD_NAMES:
            msg = f"`reward` must be one of {', '.join(REWARD_NAMES)}; got {self.reward!r}."
            raise ConfigError(msg)
        for name, low, optional in (
            ("budget", 1, False),
            ("beam_width", 1, False),
            ("max_concurrency", 1, False),
            ("max_retries", 0, False),
            ("candidates_per_round", 1, True),
            ("max_tokens", 1, True),
        ):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                msg = f"`{name}` must be an integer >= {low}, got {value!r}."
                raise ConfigError(msg)
        for name, most in (
            ("budget", MAX_BUDGET),
            ("candidates_per_round", MAX_CANDIDATES),
            ("beam_width", MAX_CANDIDATES),
            ("max_concurrency", MAX_CONCURRENCY),
        ):
            value = getattr(self, name)
            if value is not None and value > most:
                msg = (
                    f"`{name}` is {value}, above the limit of {most} (MAX_{name.upper()}): "
                    f"lower it, or split the work into several requests."
                )
                raise ConfigError(msg)
        for name in ("timeout", "deadline"):
            value = getattr(self, name)
            if value is not None and not (
                isinstance(value, int | float)
                and not isinstance(value, bool)
                and 0 < value < math.inf
            ):
                msg = f"`{name}` must be a number of seconds > 0 (or None), got {value!r}."
                raise ConfigError(msg)
        n = self.candidates_per_round
        if n is not None and n < self.per_round:
            msg = (
                f"`candidates_per_round` (N={n}) is smaller than the calls sent per round "
                f"(K={self.per_round} for search={self.search!r}, budget={self.budget}); "
                f"raise N to at least {self.per_round} or lower the budget."
            )
            raise ConfigError(msg)
        if not (isinstance(self.exploration, int | float) and 0 <= self.exploration < math.inf):
            msg = f"`exploration` must be a finite number >= 0, got {self.exploration!r}."
            raise ConfigError(msg)

    @property
    def strategy(self) -> Strategy:
        """How this search kind spends its calls."""
        return STRATEGIES[self.search]

    @property
    def per_round(self) -> int:
        """K: response calls per round."""
        return self.strategy.per_round(self.budget, self.beam_width)

    @property
    def rounds(self) -> int:
        """Rounds when every round sends its K calls (:attr:`Plan.rounds` is the most)."""
        return -(-self.budget // self.per_round)

    @property
    def n(self) -> int:
        """N: candidates proposed per round, including the original in the first."""
        if self.candidates_per_round is not None:
            return self.candidates_per_round
        return min(MAX_CANDIDATES, max(8, 2 * self.per_round))


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(SearchSettings))
"""Every search setting: what a per-call keyword, a model field or a request may set."""


@dataclass
class Candidate:
    """One candidate prompt and everything that happened to it."""

    id: int
    prompt: str
    """The user's turn as sent: the original, or the original with an instruction added."""
    origin: str
    round: int
    meta: dict[str, Any] = field(default_factory=dict)
    system: str | None = None
    """An instruction sent as a system message (``prompt`` is then the original)."""
    max_tokens: int | None = None
    """This candidate's output cap, at most the request's ``max_tokens``; ``None``: the
    request's own bound."""
    rejected: str | None = None
    """Why stage 1 refused it before ranking (duplicate, dropped the request)."""
    predicted: dict[str, float] | None = None
    uncertainty: dict[str, float] | None = None
    predicted_reward: float | None = None
    sent: bool = False
    response: Response | None = None
    measured: dict[str, float] | None = None
    reward: float | None = None
    rank_key: tuple[float, float] | None = None
    attempts: int = 0
    """Calls charged for this candidate (attempts given back unsent are not counted)."""
    error: str | None = None
    """Why it has no usable answer: the model's error, a budget refusal, or an empty answer."""
    empty: bool = False
    """The answer was empty: a failed candidate, never chosen over a non-empty answer."""
    outcomes: list[str] = field(default_factory=list)
    """How each attempt was settled (``ok``, ``failed``, ``unknown``, ``released``)."""

    @property
    def placement(self) -> Placement:
        """Where the instruction goes: the user's turn or a system message."""
        return "user" if self.system is None else "system"

    @property
    def request(self) -> Request:
        """What the response call sends."""
        return Request(self.prompt, self.system, self.max_tokens)

    @property
    def text(self) -> str:
        """The candidate as one text, for stage 1 and the heuristics: what it asks and how.

        The user's turn when that is all it changes; a system instruction comes first as
        ``System: ...`` and an output cap last, so a heuristic sees the instruction wherever
        it is sent, and can tell the variants apart.
        """
        return candidate_text(self.prompt, self.system, self.max_tokens)

    def record_attempt(self, outcome: Outcome, exc: BaseException | None) -> None:
        """The call path's record of one attempt: paid attempts count as sent."""
        if outcome != "released":
            self.sent = True
            self.attempts += 1
        self.outcomes.append(outcome if exc is None else f"{outcome}: {type(exc).__name__}")

    def trace(self) -> dict[str, Any]:
        """JSON-friendly record for ``response_metadata`` and the CLI."""
        return {
            "id": self.id,
            "round": self.round,
            "origin": self.origin,
            "prompt": self.prompt,
            "placement": self.placement,
            "system": self.system,
            "max_tokens": self.max_tokens,
            "rejected": self.rejected,
            "predicted": self.predicted,
            "uncertainty": self.uncertainty or None,
            "predicted_reward": self.predicted_reward,
            "sent": self.sent,
            "attempts": self.attempts,
            "outcomes": list(self.outcomes),
            "empty": self.empty,
            "measured": self.measured,
            "reward": self.reward,
            "response": self.response.text if self.response else None,
            "error": self.error,
        }


@dataclass(frozen=True)
class Plan:
    """A dry run: the most a request can spend with the given settings, before spending."""

    response_calls: int
    response_tokens: int | None
    """Bound on response tokens, without the prompt: add its UTF-8 bytes once per call."""
    optimizer_calls: int
    draft_calls: int
    judge_calls: int
    rounds: int
    """Rounds priced: the most a request can take (one call each), unless asked for fewer."""
    candidates_per_round: int

    def as_dict(self) -> dict[str, int | None]:
        return dict(self.__dict__)


@dataclass
class SearchResult:
    """The chosen candidate, every candidate, and what was spent."""

    best: Candidate
    candidates: list[Candidate]
    settings: SearchSettings
    goal: dict[str, float]
    usage: dict[str, dict[str, float | int]]
    rounds: int
    budget_exhausted: bool
    stopped: StopReason
    stop_detail: str | None = None
    """What stopped the search, in words, when there is more to say than ``stopped`` (a
    budget's refusal): a separate field, so ``stopped`` stays one of a fixed set to match on."""

    @property
    def calls(self) -> int:
        return int(self.usage["response"]["calls"])

    def trace(self) -> dict[str, Any]:
        s = self.settings
        return {
            "search": s.search,
            "filter": s.filter,
            "reward_function": s.reward,
            "goal": self.goal,
            "budget": s.budget,
            "calls": self.calls,
            "rounds": self.rounds,
            "budget_exhausted": self.budget_exhausted,
            "stopped": self.stopped.value,
            "stop_detail": self.stop_detail,
            "best": self.best.id,
            "reward": self.best.reward,
            "scores": self.best.measured,
            "usage": self.usage,
            "candidates": [c.trace() for c in self.candidates],
        }

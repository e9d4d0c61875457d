"""The prompt-optimizer interface: propose rewrites of the user's prompt toward a goal."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hia_chain.context import RunContext
from hia_chain.goals import Objective

__all__ = [
    "Feedback",
    "OptimizeRequest",
    "PromptOptimizer",
    "Proposal",
    "keeps_request",
    "rewrite_problem",
]


@dataclass(frozen=True)
class Feedback:
    """A prompt already sent and what its response measured, for refinement rounds."""

    prompt: str
    measured: Mapping[str, float]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizeRequest:
    """Everything an optimizer needs: the prompt, the goal and the reward context."""

    prompt: str
    """The user's original prompt; every rewrite must keep its request intact."""
    objectives: tuple[Objective, ...]
    """The objectives named in the goal, with descriptions and scales (the reward context)."""
    goal: Mapping[str, float]
    n: int
    """How many rewrites to propose (the original is added by the search, not here)."""
    feedback: Feedback | None = None
    """The best prompt so far and its measured scores (greedy and beam rounds)."""
    seed: int | None = None
    avoid: frozenset[str] = frozenset()
    """Candidates already tried in earlier rounds, as :func:`~hia_chain.instructions.candidate_text`
    (a plain rewrite's is its prompt); proposing them again wastes a slot."""


@dataclass(frozen=True)
class Proposal:
    """One proposed prompt, with where it came from and optimizer-private notes."""

    prompt: str
    origin: str
    meta: Mapping[str, Any] = field(default_factory=dict)
    system: str | None = None
    """An instruction to send as a system message; the user's prompt then goes unchanged
    (``prompt`` is the original). ``None``: everything is in ``prompt``."""
    max_tokens: int | None = None
    """An output cap for this candidate's call; the search clips it to the request's own
    bound. ``None``: the request's bound."""


class PromptOptimizer(ABC):
    """Proposes candidate prompts; never calls the response model."""

    model_calls_per_round: int = 0
    """Most model calls one :meth:`apropose` makes, retries included, for dry-run planning."""

    @abstractmethod
    async def apropose(
        self, request: OptimizeRequest, context: RunContext | None = None
    ) -> list[Proposal]:
        """Return up to ``request.n`` distinct proposals (fewer is allowed, never more)."""


_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    "a an the of to and or in on for is are be with as at by it this that your you me my i "
    "please what how why".split()
)


def _content_words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


def keeps_request(original: str, candidate: str, min_recall: float = 0.7) -> bool:
    """Whether a rewrite still carries the user's request.

    A rewrite may add or adjust instructions but never drop the task: at least ``min_recall``
    of the original's content words must survive. Cheap and conservative on purpose; an
    LLM rewrite that paraphrases the task away is rejected rather than trusted.
    """
    words = _content_words(original)
    if not words:
        return original.strip().lower() in candidate.lower()
    have = set(_content_words(candidate))
    return sum(w in have for w in words) / len(words) >= min_recall


_PLACEHOLDER = re.compile(
    r"\{\{.*?\}\}|\{[a-z_][\w-]*\}|<[a-z_][\w-]*>|\[(?:insert|your)[^\]]*\]", re.I
)
_JSONISH = re.compile(r"^\s*[\[{]|\"\w+\"\s*:")
_FILLER = frozenset(
    "can could would will kindly tell explain describe question answer give provide know "
    "following request task user prompt rewrite rewritten version".split()
)
_MAX_ADDED_WORDS = 80


def rewrite_problem(original: str, candidate: str) -> str | None:
    """Why an optimizer's rewrite is junk, or ``None`` when it is a usable candidate.

    Small rewriter models (the embedded 135M one above all) return template placeholders
    (``{{get-file}}``), JSON blobs, the question merely restated, or an answer instead of a
    prompt. Each would waste a paid call, so stage 1 rejects them with this reason.
    """
    if not keeps_request(original, candidate):
        return "drops the user's request"
    if _PLACEHOLDER.search(candidate) and not _PLACEHOLDER.search(original):
        return "contains a template placeholder"
    if _JSONISH.search(candidate) and not _JSONISH.search(original):
        return "is a JSON blob, not a prompt"
    new = set(_content_words(candidate)) - set(_content_words(original))
    if not new - _FILLER:
        return "restates the request without an instruction"
    if len(candidate.split()) - len(original.split()) > _MAX_ADDED_WORDS:
        return "adds more than a prompt's worth of text (an answer, not an instruction)"
    return None

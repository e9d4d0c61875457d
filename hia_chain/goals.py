"""Objectives, goal vectors and the three reward functions R(G, r) of DESIGN §2.

A reward function maps measured (or predicted) attribute scores and a goal to one number,
higher is better. ``goal_completion`` is coarse (many ties), so every reward function also
exposes :meth:`RewardFunction.rank_key`, which breaks ties by the euclidean reward.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hia_chain.errors import ConfigError, RewardModelError

__all__ = [
    "REWARD_NAMES",
    "Objective",
    "RewardFunction",
    "RewardName",
    "get_reward_function",
    "parse_goal",
    "validate_goal",
    "validate_scores",
]

RewardName = Literal["euclidean", "max_error", "goal_completion"]
REWARD_NAMES: tuple[RewardName, ...] = ("euclidean", "max_error", "goal_completion")


@dataclass(frozen=True)
class Objective:
    """One attribute the user wants to steer, on a closed numeric scale.

    The description and scale are shown to the prompt optimizer as reward context: the HIA
    paper found detailed context prevents spurious rewrites.
    """

    name: str
    """Key used in goals and scorer outputs, e.g. ``"verbosity"``."""
    description: str = ""
    """What a high and a low score mean, in words the optimizer can act on."""
    low: float = 0.0
    """Bottom of the scale."""
    high: float = 4.0
    """Top of the scale."""
    weight: float = 1.0
    """Relative importance in the reward; must be > 0."""
    tolerance: float | None = None
    """Distance to the target that counts as met in ``goal_completion``; default half a step."""
    low_label: str = "low"
    high_label: str = "high"

    def __post_init__(self) -> None:
        if not self.name or not self.name.strip():
            raise ConfigError("Objective `name` must be a non-empty string.")
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high <= self.low:
            msg = (
                f"Objective {self.name!r}: `high` must be greater than `low`, "
                f"got low={self.low}, high={self.high}."
            )
            raise ConfigError(msg)
        if not (self.weight > 0 and math.isfinite(self.weight)):
            msg = f"Objective {self.name!r}: `weight` must be a positive number, got {self.weight}."
            raise ConfigError(msg)
        if self.tolerance is not None and not self.tolerance >= 0:
            msg = f"Objective {self.name!r}: `tolerance` must be >= 0, got {self.tolerance}."
            raise ConfigError(msg)

    @property
    def span(self) -> float:
        """Width of the scale, used to normalise errors so objectives are comparable."""
        return self.high - self.low

    @property
    def tau(self) -> float:
        """Tolerance for ``goal_completion``: half of a quarter-scale step (0.5 on 0–4)."""
        if self.tolerance is not None:
            return self.tolerance
        return self.span / 8

    def clip(self, value: float) -> float:
        """Clamp a raw score into the scale."""
        return min(self.high, max(self.low, value))


def validate_goal(objectives: Sequence[Objective], goal: Mapping[str, float]) -> dict[str, float]:
    """Check a goal against the objectives and return it as a plain dict.

    Raises:
        ConfigError: empty goal, unknown objective, non-numeric or out-of-scale target.
    """
    if not goal:
        names = ", ".join(o.name for o in objectives) or "(none configured)"
        msg = f"`goal` is empty: give a target for at least one objective ({names})."
        raise ConfigError(msg)
    by_name = {o.name: o for o in objectives}
    out: dict[str, float] = {}
    for name, target in goal.items():
        if name not in by_name:
            known = ", ".join(sorted(by_name)) or "(none configured)"
            msg = (
                f"`goal` names unknown objective {name!r}; known objectives: {known}. "
                "Add an Objective with that name or fix the spelling."
            )
            raise ConfigError(msg)
        obj = by_name[name]
        if isinstance(target, bool) or not isinstance(target, int | float):
            msg = f"`goal[{name!r}]` must be a number, got {target!r}."
            raise ConfigError(msg)
        if not (obj.low <= target <= obj.high):
            msg = (
                f"`goal[{name!r}]` = {target} is outside the objective's scale "
                f"[{obj.low}, {obj.high}]; pick a target inside it."
            )
            raise ConfigError(msg)
        out[name] = float(target)
    return out


def parse_goal(items: Sequence[str] | None) -> dict[str, float]:
    """Turn command-line ``["verbosity=1", "complexity=3"]`` into a goal dict.

    Raises:
        ConfigError: an item is not NAME=NUMBER.
    """
    goal: dict[str, float] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            goal[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            msg = f"--goal {item!r}: expected NAME=NUMBER, e.g. --goal verbosity=1."
            raise ConfigError(msg)
    return goal


def validate_scores(
    scores: Mapping[str, float], names: Sequence[str], *, source: str
) -> dict[str, float]:
    """Check that a scorer returned a finite number for every objective in ``names``.

    Raises:
        RewardModelError: a key is missing or a value is NaN/inf/not a number.
    """
    out: dict[str, float] = {}
    for name in names:
        if name not in scores:
            msg = f"{source} returned no score for objective {name!r} (got keys {sorted(scores)})."
            raise RewardModelError(msg)
        value = scores[name]
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            msg = f"{source} returned {value!r} for objective {name!r}; expected a finite number."
            raise RewardModelError(msg)
        out[name] = float(value)
    return out


@dataclass(frozen=True)
class RewardFunction:
    """R(G, r) for a fixed set of objectives; only objectives named in the goal count."""

    name: RewardName
    objectives: tuple[Objective, ...] = field(default_factory=tuple)

    def _active(self, goal: Mapping[str, float]) -> list[Objective]:
        return [o for o in self.objectives if o.name in goal]

    def euclidean(self, goal: Mapping[str, float], scores: Mapping[str, float]) -> float:
        """−sqrt(Σ w ((r−G)/s)²) / sqrt(Σ w), in [−1, 0]."""
        objs = self._active(goal)
        total_w = sum(o.weight for o in objs)
        sq = sum(o.weight * ((scores[o.name] - goal[o.name]) / o.span) ** 2 for o in objs)
        return -math.sqrt(sq) / math.sqrt(total_w)

    def max_error(self, goal: Mapping[str, float], scores: Mapping[str, float]) -> float:
        """−max |r−G| / s, in [−1, 0]."""
        return -max(abs(scores[o.name] - goal[o.name]) / o.span for o in self._active(goal))

    def goal_completion(self, goal: Mapping[str, float], scores: Mapping[str, float]) -> float:
        """Weighted share of objectives within tolerance τ of the target, in [0, 1]."""
        objs = self._active(goal)
        met = sum(o.weight for o in objs if abs(scores[o.name] - goal[o.name]) <= o.tau + 1e-12)
        return met / sum(o.weight for o in objs)

    def __call__(self, goal: Mapping[str, float], scores: Mapping[str, float]) -> float:
        return float(getattr(self, self.name)(goal, scores))

    def rank_key(
        self, goal: Mapping[str, float], scores: Mapping[str, float]
    ) -> tuple[float, float]:
        """Sort key, higher is better: the reward, then the euclidean reward as tie-break."""
        return (self(goal, scores), self.euclidean(goal, scores))


def get_reward_function(name: str, objectives: Sequence[Objective]) -> RewardFunction:
    """Build a reward function by name.

    Raises:
        ConfigError: unknown name.
    """
    if name not in REWARD_NAMES:
        msg = f"`reward` must be one of {', '.join(REWARD_NAMES)}; got {name!r}."
        raise ConfigError(msg)
    return RewardFunction(name=name, objectives=tuple(objectives))

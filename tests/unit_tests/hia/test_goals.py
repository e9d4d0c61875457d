import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hia_chain.errors import ConfigError, RewardModelError
from hia_chain.goals import Objective, get_reward_function, validate_goal, validate_scores

V = Objective("verbosity")
C = Objective("complexity")
S = Objective("sentiment", low=-1, high=1, weight=2.0)
OBJS = (V, C, S)


def test_known_values() -> None:
    goal = {"verbosity": 1, "complexity": 3}
    scores = {"verbosity": 3, "complexity": 3}
    e = get_reward_function("euclidean", OBJS)
    assert e(goal, scores) == pytest.approx(-math.sqrt(0.25) / math.sqrt(2))
    assert get_reward_function("max_error", OBJS)(goal, scores) == pytest.approx(-0.5)
    assert get_reward_function("goal_completion", OBJS)(goal, scores) == pytest.approx(0.5)


def test_weights_and_other_scales() -> None:
    goal = {"verbosity": 0, "sentiment": 1}
    scores = {"verbosity": 0, "sentiment": -1}  # sentiment fully wrong, weight 2 of 3
    assert get_reward_function("euclidean", OBJS)(goal, scores) == pytest.approx(
        -math.sqrt(2 * 1.0) / math.sqrt(3)
    )
    assert get_reward_function("goal_completion", OBJS)(goal, scores) == pytest.approx(1 / 3)
    # tolerance on a 2-wide scale is a quarter of a unit by default
    assert S.tau == pytest.approx(0.25)


def test_goal_completion_tolerance_and_tie_break() -> None:
    gc = get_reward_function("goal_completion", OBJS)
    goal = {"verbosity": 2}
    assert gc(goal, {"verbosity": 2.5}) == 1.0
    assert gc(goal, {"verbosity": 2.51}) == 0.0
    # both met: the closer one ranks higher through the euclidean tie-break
    assert gc.rank_key(goal, {"verbosity": 2.1}) > gc.rank_key(goal, {"verbosity": 2.4})


score = st.floats(0, 4, allow_nan=False)


@given(score, score, score, score)
def test_ranges(v: float, c: float, gv: float, gc_: float) -> None:
    goal, scores = {"verbosity": gv, "complexity": gc_}, {"verbosity": v, "complexity": c}
    assert -1 <= get_reward_function("euclidean", OBJS)(goal, scores) <= 0
    assert -1 <= get_reward_function("max_error", OBJS)(goal, scores) <= 0
    assert 0 <= get_reward_function("goal_completion", OBJS)(goal, scores) <= 1


@given(score, score, st.floats(0, 1))
def test_monotone_in_error(target: float, start: float, step: float) -> None:
    """Moving a score toward the target never lowers any reward."""
    closer = start + (target - start) * step
    goal = {"verbosity": target}
    for name in ("euclidean", "max_error", "goal_completion"):
        r = get_reward_function(name, OBJS)
        assert r(goal, {"verbosity": closer}) >= r(goal, {"verbosity": start}) - 1e-12


def test_perfect_score_is_best() -> None:
    goal = {"verbosity": 1, "complexity": 2}
    for name in ("euclidean", "max_error"):
        assert get_reward_function(name, OBJS)(goal, goal) == 0
    assert get_reward_function("goal_completion", OBJS)(goal, goal) == 1


@pytest.mark.parametrize(
    ("goal", "match"),
    [
        ({}, "empty"),
        ({"verbosty": 1}, "unknown objective 'verbosty'"),
        ({"verbosity": 5}, "outside the objective's scale"),
        ({"verbosity": "high"}, "must be a number"),
    ],
)
def test_bad_goals(goal: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        validate_goal(OBJS, goal)


def test_bad_objectives_and_reward_name() -> None:
    with pytest.raises(ConfigError, match="high"):
        Objective("x", low=4, high=0)
    with pytest.raises(ConfigError, match="weight"):
        Objective("x", weight=0)
    with pytest.raises(ConfigError, match="must be one of"):
        get_reward_function("cosine", OBJS)


def test_scores_validation() -> None:
    with pytest.raises(RewardModelError, match="no score for objective 'complexity'"):
        validate_scores({"verbosity": 1}, ["verbosity", "complexity"], source="s")
    with pytest.raises(RewardModelError, match="nan"):
        validate_scores({"verbosity": float("nan")}, ["verbosity"], source="s")

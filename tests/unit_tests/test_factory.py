"""The factory builds the models and heuristics the CLI and the bench name, one way."""

from __future__ import annotations

from pathlib import Path

import pytest

from hia_chain.errors import ConfigError
from hia_chain.factory import HEURISTICS, heuristic, response_model
from hia_chain.scorers.draft import DraftHeuristic
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic, Observation
from hia_chain.scorers.text import BUILTIN_OBJECTIVES
from hia_chain.testing import FakeChatModel

OBJECTIVES = list(BUILTIN_OBJECTIVES.values())


def test_each_named_heuristic_is_built() -> None:
    built = {k: heuristic(k, OBJECTIVES, drafter=FakeChatModel()) for k in HEURISTICS}
    assert isinstance(built["instruction"], InstructionHeuristic)
    assert isinstance(built["learned"], LearnedHeuristic)
    assert isinstance(built["learned"].fallback, InstructionHeuristic)
    draft = built["draft"]
    assert isinstance(draft, DraftHeuristic) and isinstance(draft.drafter, FakeChatModel)
    assert {n for s in draft.scorers for n in s.objectives} == set(BUILTIN_OBJECTIVES)


def test_a_learned_heuristic_warm_starts_from_a_calibration_file(tmp_path: Path) -> None:
    learned = heuristic("learned", OBJECTIVES)
    assert isinstance(learned, LearnedHeuristic)
    learned.store.append(Observation("Q?", "Q? Answer briefly.", {"verbosity": 1.0}, {}))
    learned.save(tmp_path / "state.json", model="fake")
    warm = heuristic("learned", OBJECTIVES, state=tmp_path / "state.json")
    assert isinstance(warm, LearnedHeuristic) and warm.n_observations == 1


def test_an_unknown_heuristic_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="learned, instruction, draft"):
        heuristic("oracle", OBJECTIVES)


def test_an_endpoint_needs_a_model_name_and_never_retries_on_its_own() -> None:
    with pytest.raises(ConfigError, match="--base-url needs --model"):
        response_model("http://127.0.0.1:9/v1")
    pytest.importorskip("langchain_openai")
    llm = response_model("http://127.0.0.1:9/v1", "m", max_tokens=7, seed=1, timeout=3)
    assert (llm.max_retries, llm.max_tokens, llm.model_name) == (0, 7, "m")  # type: ignore[attr-defined]

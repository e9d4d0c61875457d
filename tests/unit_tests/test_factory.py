"""The factory builds the models and heuristics the CLI and the bench name, one way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hia_chain.errors import ConfigError
from hia_chain.factory import HEURISTICS, ask, heuristic, response_model
from hia_chain.scorers.draft import DraftHeuristic
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic, Observation
from hia_chain.scorers.text import BUILTIN_OBJECTIVES
from hia_chain.search.types import Request
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


def test_a_warm_start_state_is_refused_for_a_heuristic_that_cannot_use_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="for the learned heuristic, not 'instruction'"):
        heuristic("instruction", OBJECTIVES, state=tmp_path / "state.json")


def test_an_unknown_heuristic_names_the_choices() -> None:
    with pytest.raises(ConfigError, match="instruction, learned, draft"):
        heuristic("oracle", OBJECTIVES)


def test_an_endpoint_needs_a_model_name_and_never_retries_on_its_own() -> None:
    with pytest.raises(ConfigError, match="--base-url needs --model"):
        response_model("http://127.0.0.1:9/v1")
    pytest.importorskip("langchain_openai")
    llm = response_model("http://127.0.0.1:9/v1", "m", max_tokens=7, seed=1, timeout=3)
    assert (llm.max_retries, llm.max_tokens, llm.model_name) == (0, 7, "m")  # type: ignore[attr-defined]


def test_the_embedded_model_keeps_its_own_cap_when_none_is_given() -> None:
    """``response_model()`` with defaults built ``LocalChatModel(max_tokens=None)``: a
    ValidationError. Construction loads no weights, so this runs without them."""
    pytest.importorskip("torch")
    from hia_chain.local import LocalChatModel

    llm = response_model(seed=3)
    assert isinstance(llm, LocalChatModel)
    assert (llm.max_tokens, llm.seed) == (LocalChatModel().max_tokens, 3)
    assert response_model(max_tokens=7).max_tokens == 7  # type: ignore[attr-defined]


def test_ask_sends_the_request_its_cap_and_extra_keywords() -> None:
    fake = FakeChatModel(answer=lambda prompt, i: "three words here")
    request = Request("Q?", system="Be brief.", max_tokens=5)
    response = asyncio.run(ask(fake, request, seed=9))
    assert response.text == "three words here" and response.output_tokens == 3
    assert fake.call_kwargs[0]["max_tokens"] == 5 and fake.call_kwargs[0]["seed"] == 9
    assert [m.type for m in fake.messages_seen[0]] == ["system", "human"]
    asyncio.run(ask(fake, Request("Q?")))
    assert "max_tokens" not in fake.call_kwargs[1]  # uncapped: the model's own bound

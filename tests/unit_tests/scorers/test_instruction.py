"""The instruction heuristic reads the phrases a candidate adds, and its output cap."""

from __future__ import annotations

import pytest

from hia_chain.instructions import candidate_text, output_cap
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.text import BUILTIN_OBJECTIVES, VerbosityScorer

ASK = "What is photosynthesis?"
BRIEF = ASK + " Answer briefly, in two or three sentences."


def test_candidate_text_round_trips_its_cap() -> None:
    assert candidate_text(ASK) == ASK
    assert output_cap(candidate_text(ASK, "Be brief.", 24)) == 24
    assert output_cap(candidate_text(ASK, "Be brief.")) is None
    # a prompt that merely mentions a limit is not a cap
    assert output_cap("Write it. (Output limit: 24 tokens.) Then stop.") is None


async def test_a_cap_bounds_the_verbosity_it_predicts() -> None:
    h = InstructionHeuristic(list(BUILTIN_OBJECTIVES.values()))
    texts = [ASK, BRIEF, candidate_text(BRIEF, None, 24), candidate_text(ASK, None, 56)]
    plain, brief, brief_capped, capped = (
        p.scores["verbosity"] for p in await h.apredict(ASK, texts, ["verbosity"])
    )
    assert (plain, brief) == (2.0, 1.0)
    assert brief_capped == pytest.approx(VerbosityScorer().level(0.75 * 24))
    assert capped == pytest.approx(VerbosityScorer().level(0.75 * 56))
    assert brief_capped < brief < capped < plain
    # other objectives ignore the cap
    (pred,) = await h.apredict(ASK, [candidate_text(ASK, None, 24)], ["complexity"])
    assert pred.scores["complexity"] == 2.0

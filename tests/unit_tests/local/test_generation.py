"""The one stop-string rule, shared by LocalChatModel (batches and streams) and IVGChatModel."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from hia_chain.local.generation import cut_at_stop  # noqa: E402


def test_the_earliest_stop_string_wins_whatever_the_list_order() -> None:
    assert cut_at_stop("one. two! three", ["!", "."], ended=False) == ("one", "stop")
    assert cut_at_stop("one. two! three", ["", "?"], ended=False) == ("one. two! three", "length")


def test_the_finish_reason_is_stop_when_an_end_token_or_a_stop_string_ended_it() -> None:
    assert cut_at_stop("done", [], ended=True) == ("done", "stop")
    assert cut_at_stop("done", ["x"], ended=False) == ("done", "length")

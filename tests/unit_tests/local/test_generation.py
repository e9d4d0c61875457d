"""The one stop-string rule, shared by LocalChatModel (batches and streams) and IVGChatModel;
per-row token caps; and streams that join up to the result under tokenization clean-up."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from transformers import PreTrainedTokenizerBase  # noqa: E402

from hia_chain.local.generation import TextDecoder, cut_at_stop, stream_text  # noqa: E402
from hia_chain.local.hf_adapter import chat_ids  # noqa: E402
from hia_chain.local.settings import DecodeSettings  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model_and_tokenizer  # noqa: E402


def test_the_earliest_stop_string_wins_whatever_the_list_order() -> None:
    assert cut_at_stop("one. two! three", ["!", "."], ended=False) == ("one", "stop")
    assert cut_at_stop("one. two! three", ["", "?"], ended=False) == ("one. two! three", "length")


def test_the_finish_reason_is_stop_when_an_end_token_or_a_stop_string_ended_it() -> None:
    assert cut_at_stop("done", [], ended=True) == ("done", "stop")
    assert cut_at_stop("done", ["x"], ended=False) == ("done", "length")


def test_each_row_stops_at_its_own_cap_and_the_batch_runs_to_the_largest() -> None:
    model, tok = tiny_model_and_tokenizer()
    prompt = chat_ids(tok, [{"role": "user", "content": "the movie"}])
    greedy = DecodeSettings(temperature=0)
    out = TextDecoder(model, tok, [prompt] * 3, greedy, max_tokens=[2, 9, 5]).run()
    assert [g.output_tokens for g in out] == [2, 9, 5]  # no end token from this prompt
    assert [g.finish_reason for g in out] == ["length"] * 3
    longest = out[1].text
    assert all(longest.startswith(g.text) for g in out)  # greedy: each cap cuts one answer
    alone = TextDecoder(model, tok, [prompt], DecodeSettings(temperature=0, max_tokens=5)).run()
    assert alone == [out[2]]
    with pytest.raises(ValueError, match="one integer >= 1 per prompt"):
        TextDecoder(model, tok, [prompt] * 2, greedy, max_tokens=[3])


class CleanedText:
    """A stand-in decoder: a fixed token list decoded as transformers does with
    ``clean_up_tokenization_spaces=True``, so a later token can rewrite earlier text."""

    def __init__(self, pieces: list[str]) -> None:
        self.pieces, self.n, self.stop = pieces, 0, ()

    def step(self) -> bool:
        if self.n == len(self.pieces):
            return False
        self.n += 1
        return True

    def live(self, row: int) -> bool:
        return self.n < len(self.pieces)

    def text(self, row: int) -> str:
        raw = "".join(self.pieces[: self.n])
        return PreTrainedTokenizerBase.clean_up_tokenization(None, raw)  # type: ignore[arg-type]


PIECES = [
    "I", " do", " n", "'t", " know", " ", ".", " It", " '", "s", " fine", " '", " ", "ok", " ", "!",
]  # fmt: skip


def test_a_stream_joins_up_to_the_cleaned_text_although_tokens_rewrite_it() -> None:
    final = CleanedText(PIECES)
    while final.step():
        pass
    want = final.text(0)
    assert want == "I don't know. It's fine'ok!"
    # the premise: the text of a token prefix is not always a prefix of the text
    prefixes = [CleanedText(PIECES[:n]) for n in range(1, len(PIECES) + 1)]
    for p in prefixes:
        while p.step():
            pass
    assert any(not want.startswith(p.text(0)) for p in prefixes)
    guarded: list[int] = []

    class Guard:
        def __enter__(self) -> None:
            guarded.append(1)

        def __exit__(self, *exc: object) -> None:
            pass

    pieces = list(stream_text(CleanedText(PIECES), guard=Guard))  # type: ignore[arg-type]
    assert "".join(pieces) == want and all(pieces)
    assert len(pieces) > 3  # still streamed, not held to the end
    assert len(guarded) == len(PIECES) + 1  # every step, the last (empty) one included

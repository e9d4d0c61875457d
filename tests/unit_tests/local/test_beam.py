"""Chunk-level beam search on a tiny random Llama: special cases, cache reordering, pooling."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hia_chain.errors import ConfigError, RewardModelError  # noqa: E402
from hia_chain.local.beam import chunk_beam_search  # noqa: E402
from hia_chain.local.decoding import Guidance, guided_decode  # noqa: E402
from hia_chain.local.hf_adapter import (  # noqa: E402
    CausalStream,
    chat_ids,
    eos_token_ids,
    left_pad,
    pad_token_id,
    positions_from_mask,
    real_vocab_size,
)
from hia_chain.local.settings import DecodeSettings  # noqa: E402
from hia_chain.local.values import ImplicitValue, ScorerValue, ValueFunction  # noqa: E402
from hia_chain.scorers.text import SentimentScorer  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
VOCAB, EOS, PAD = real_vocab_size(TOK), eos_token_ids(TOK), pad_token_id(TOK)
PROMPT = chat_ids(TOK, [{"role": "user", "content": "this movie"}])
TUNED_PROMPT = chat_ids(
    TOK,
    [
        {"role": "system", "content": "write positive reviews"},
        {"role": "user", "content": "this movie"},
    ],
)
SENTIMENT = ScorerValue(SentimentScorer(), {"sentiment": 4})


def text_of(ids: Sequence[int]) -> str:
    return TOK.decode(list(ids), skip_special_tokens=True)


def search(model, value, *, guidance=None, seed=0, eos=frozenset(), processors=(), **shape):
    shape.setdefault("max_tokens", 12)
    return chunk_beam_search(
        CausalStream.prefill(model, [PROMPT], PAD), guidance, value, DecodeSettings(**shape),
        prompt="this movie", decode=text_of, vocab_size=VOCAB, eos_ids=eos, pad_id=PAD,
        generator=torch.Generator().manual_seed(seed), extra_processors=processors,
    )  # fmt: skip


def plain(model, rows: int, n: int, seed: int):
    stream = CausalStream.prefill(model, [PROMPT], PAD)
    stream.reorder(torch.zeros(rows, dtype=torch.long))
    return guided_decode(
        stream, None, DecodeSettings().processors(), max_new_tokens=n, vocab_size=VOCAB,
        eos_ids=frozenset(), pad_id=PAD, generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


def test_one_beam_one_successor_one_chunk_is_plain_sampling() -> None:
    model = tiny_model()
    result = search(model, None, beam_width=1, successors_per_beam=1, chunk_tokens=None, seed=5)
    assert list(result.best.token_ids) == plain(model, 1, 12, seed=5).tokens[0].tolist()
    assert len(result.chunks) == 1 and result.tokens_generated == 12


def test_one_beam_n_successors_one_chunk_is_best_of_n() -> None:
    model = tiny_model()
    n = 6
    result = search(
        model, SENTIMENT, beam_width=1, successors_per_beam=n, chunk_tokens=None, seed=2
    )
    samples = plain(model, n, 12, seed=2).tokens.tolist()
    values = SENTIMENT("this movie", [text_of(s) for s in samples])
    best = max(range(n), key=lambda i: values[i])
    assert list(result.best.token_ids) == samples[best]
    assert result.best.value == max(values)
    assert result.chunks[0].rows == n and list(result.chunks[0].scores) == values
    assert len(set(values)) > 1  # the tiny model's samples really differ


def test_chunked_search_keeps_the_best_and_improves_on_sampling() -> None:
    model = tiny_model()
    result = search(model, SENTIMENT, beam_width=2, successors_per_beam=3, chunk_tokens=4, seed=0)
    assert [c.rows for c in result.chunks] == [6, 6, 6]
    assert [c.tokens for c in result.chunks] == [4, 8, 12]
    for c in result.chunks:
        assert list(c.kept) == sorted(c.scores, reverse=True)[:2]
    assert len(result.beams) == 2 and result.best.value >= result.beams[1].value
    assert len(result.best.token_ids) == 12 and result.tokens_generated == 6 * 12
    sampled = SENTIMENT(
        "this movie", [text_of(s) for s in plain(model, 6, 12, seed=0).tokens.tolist()]
    )
    assert result.best.value >= sum(sampled) / len(sampled)


@torch.no_grad()
def test_every_cache_is_reordered_with_the_beams() -> None:
    """The implicit value summed through reorders equals a from-scratch recomputation.

    If any KV cache (base or guide) were left in the wrong row order, the logits after a
    selection would belong to another beam and the sums would differ.
    """
    model = tiny_model(seed=3)
    tuned = CausalStream.prefill(model, [TUNED_PROMPT], PAD)
    result = search(
        model, ImplicitValue(1.0), guidance=Guidance([tuned], None, beta=1.5),
        beam_width=2, successors_per_beam=2, chunk_tokens=3, max_tokens=9, seed=4,
    )  # fmt: skip
    for beam in result.beams:
        response = list(beam.token_ids)
        full = [PROMPT + response, TUNED_PROMPT + response]
        ids, mask = left_pad(full, PAD)
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)
        ).logits
        width = ids.shape[1]
        lp = [
            logits[r, width - len(response) - 1 : width - 1, :VOCAB].log_softmax(-1) for r in (0, 1)
        ]
        steps = torch.arange(len(response))
        target = torch.tensor(response)
        expected = (lp[1][steps, target] - lp[0][steps, target]).sum().item()
        assert beam.implicit == pytest.approx(expected, abs=1e-3)
        assert beam.value == pytest.approx(expected, abs=1e-3)


class EndEvenStarts:
    """A test processor: rows whose first new token is even end after two tokens."""

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = scores.clone()
        new = input_ids[:, len(PROMPT) :]
        for row in range(out.shape[0]):
            if new.shape[1] >= 2 and int(new[row, 0]) % 2 == 0:
                out[row] = -torch.inf
                out[row, TOK.eos_token_id] = 0.0
        return out


class ShortIsBest(ValueFunction):
    name = "short"

    def __call__(self, prompt, texts, *, implicit=None):
        return [-float(len(t.split())) for t in texts]


def test_finished_beams_are_kept_once_and_never_decoded_again() -> None:
    model = tiny_model()
    k = 3
    result = search(
        model, ShortIsBest(), beam_width=2, successors_per_beam=k, chunk_tokens=3,
        max_tokens=12, eos=EOS, processors=[EndEvenStarts()], seed=1,
    )  # fmt: skip
    assert any(c.kept_finished for c in result.chunks), "seed should end some rows early"
    for before, after in zip(result.chunks, result.chunks[1:], strict=False):
        assert after.rows == k * (len(before.kept) - before.kept_finished)
    finished = [b.token_ids for b in result.beams if b.finished]
    assert len(finished) == len(set(finished))
    assert result.best.finished and result.best.token_ids[-1] == TOK.eos_token_id


def test_search_stops_when_every_kept_row_has_ended() -> None:
    model = tiny_model()
    result = search(
        model, SENTIMENT, beam_width=2, successors_per_beam=2, chunk_tokens=2,
        max_tokens=40, eos=EOS, processors=[EndEvenStarts(), EndEvenStarts()], seed=0,
    )  # fmt: skip
    assert result.chunks[-1].tokens <= 40
    assert all(b.finished for b in result.beams) or result.chunks[-1].tokens == 40


@pytest.mark.parametrize(
    ("shape", "match"),
    [
        ({"beam_width": 0}, "beam_width"),
        ({"successors_per_beam": -1}, "successors_per_beam"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_bad_parameters(shape: dict, match: str) -> None:
    full = {"beam_width": 2, "successors_per_beam": 2, "chunk_tokens": 4, **shape}
    with pytest.raises(ConfigError, match=match):
        search(tiny_model(), SENTIMENT, **full)


def test_choosing_needs_a_value_and_a_single_prompt() -> None:
    model = tiny_model()
    with pytest.raises(ConfigError, match="value function"):
        search(model, None, beam_width=1, successors_per_beam=2, chunk_tokens=None)
    stream = CausalStream.prefill(model, [PROMPT, PROMPT], PAD)
    with pytest.raises(ConfigError, match="batch 1"):
        chunk_beam_search(
            stream, None, None, DecodeSettings(max_tokens=2), prompt="", decode=text_of,
            vocab_size=VOCAB, eos_ids=EOS, pad_id=PAD, generator=None,
        )  # fmt: skip


class WrongCount(ValueFunction):
    def __call__(self, prompt, texts, *, implicit=None):
        return [0.0]


def test_a_value_returning_the_wrong_count_is_an_error() -> None:
    with pytest.raises(RewardModelError, match="1 scores for 4"):
        search(tiny_model(), WrongCount(), beam_width=2, successors_per_beam=2, chunk_tokens=4)

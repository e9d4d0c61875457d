"""Repetition control (transformers' repetition penalty and no-repeat n-gram) on a tiny Llama.

Why: the embedded 135M model loops on one sentence; the fix must act on every row's own prompt
and answer, also after chunk beam search has expanded and pruned rows (ids reorder with the
caches), and must not count left padding as text.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.generation.logits_process import (  # noqa: E402
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
)

from hia_chain.cli import build_parser  # noqa: E402
from hia_chain.cli import main as cli_main  # noqa: E402
from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.beam import chunk_beam_search  # noqa: E402
from hia_chain.local.decoding import Guidance, guided_decode, ids_for_processors  # noqa: E402
from hia_chain.local.guidance import (  # noqa: E402
    DEFAULT_NO_REPEAT_NGRAM_SIZE,
    DEFAULT_REPETITION_PENALTY,
    with_system_prompt,
)
from hia_chain.local.hf_adapter import (  # noqa: E402
    CausalStream,
    chat_ids,
    pad_token_id,
    real_vocab_size,
)
from hia_chain.local.ivg_chat_model import IVGChatModel  # noqa: E402
from hia_chain.local.settings import DecodeSettings  # noqa: E402
from hia_chain.local.values import ScorerValue  # noqa: E402
from hia_chain.scorers.text import SentimentScorer  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
MODEL = tiny_model()
VOCAB, PAD = real_vocab_size(TOK), pad_token_id(TOK)
CONV = [{"role": "user", "content": "this movie"}]
PROMPT = chat_ids(TOK, CONV)
SENTIMENT = ScorerValue(SentimentScorer(), {"sentiment": 4})


def repeated_ngrams(ids: Sequence[int], n: int) -> int:
    """How many n-grams of ``ids`` already occurred earlier in ``ids``."""
    grams = [tuple(ids[i : i + n]) for i in range(len(ids) - n + 1)]
    return len(grams) - len(set(grams))


def repetition(penalty: float = 1.0, ngram: int = 0):
    return DecodeSettings(repetition_penalty=penalty, no_repeat_ngram_size=ngram).processors()


def search(*, seed: int = 0, rows: tuple[int, int, int | None] = (2, 2, 3), token=False, **rep):
    guidance = None
    if token:
        tuned_ids = chat_ids(TOK, with_system_prompt(CONV, "write positive reviews"))
        guidance = Guidance([CausalStream.prefill(MODEL, [tuned_ids], PAD)], None, beta=2.0)
    w, k, chunk = rows
    return chunk_beam_search(
        CausalStream.prefill(MODEL, [PROMPT], PAD), guidance, SENTIMENT if w * k > 1 else None,
        DecodeSettings(beam_width=w, successors_per_beam=k, chunk_tokens=chunk, max_tokens=24, **rep),
        prompt="this movie", decode=lambda t: TOK.decode(list(t), skip_special_tokens=True),
        vocab_size=VOCAB, eos_ids=frozenset(), pad_id=PAD,
        generator=torch.Generator().manual_seed(seed),
    )  # fmt: skip


# -- the processor chain ---------------------------------------------------------------------


def test_chain_is_transformers_own_in_generate_order_and_never_mutates() -> None:
    ids = torch.tensor([[5, 6, 7, 5, 6], [8, 9, 8, 9, 8]])
    scores = torch.randn((2, VOCAB), generator=torch.Generator().manual_seed(0)) * 3
    before = scores.clone()
    chain = repetition(1.3, 2)
    assert [type(p) for p in chain] == [
        RepetitionPenaltyLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
    ]
    expected = NoRepeatNGramLogitsProcessor(2)(
        ids, RepetitionPenaltyLogitsProcessor(1.3)(ids, scores)
    )
    got = chain(ids, scores)
    assert torch.equal(got, expected) and torch.equal(scores, before)
    # row 0 ends in 6 after (5, 6, 7): "6 7" exists, so 7 is banned; row 1 ends in 8: 9 is banned
    assert got[0, 7] == -float("inf") and got[1, 9] == -float("inf")
    assert repetition() == []


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": "1.2"}, "repetition_penalty"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
    ],
)
def test_chat_model_settings_and_call_overrides_are_validated_by_name(
    kwargs: dict, bad: str
) -> None:
    """The rules themselves are DecodeSettings' (test_settings.py); the chat model applies them
    to its fields and to each call's overrides."""
    if not isinstance(next(iter(kwargs.values())), str):  # pydantic owns the field types
        with pytest.raises(ConfigError, match=bad):
            IVGChatModel(hf_model=MODEL, tokenizer=TOK, goal={"sentiment": 4}, **kwargs)
    llm = IVGChatModel(hf_model=MODEL, tokenizer=TOK, goal={"sentiment": 4}, max_tokens=2)
    with pytest.raises(ConfigError, match=bad):
        llm.invoke("x", **kwargs)


def test_left_padding_is_invisible_to_the_processors() -> None:
    short, long = chat_ids(TOK, [{"role": "user", "content": "good"}]), PROMPT + PROMPT
    stream = CausalStream.prefill(MODEL, [short, long], PAD)
    ids = ids_for_processors(stream, VOCAB)
    pads = len(long) - len(short)
    assert ids[0, :pads].tolist() == [VOCAB] * pads and ids[0, pads:].tolist() == short
    assert ids[1].tolist() == long
    scores = torch.zeros((2, VOCAB)) + 1.0
    penalized = repetition(2.0, 0)(ids, scores)
    assert penalized[0, PAD] == 1.0  # the pad was never written by row 0
    assert torch.equal(
        ids_for_processors(CausalStream.prefill(MODEL, [PROMPT], PAD), VOCAB),
        torch.tensor([PROMPT]),
    )


# -- the processors act in decoding --------------------------------------------------------


def test_no_repeat_ngram_leaves_no_repeated_ngram_in_prompt_and_answer() -> None:
    n = 2

    def decode(chain):
        s = CausalStream.prefill(MODEL, [PROMPT], PAD)
        s.reorder(torch.zeros(3, dtype=torch.long))
        out = guided_decode(
            s, None, chain, max_new_tokens=30, vocab_size=VOCAB, eos_ids=frozenset(),
            pad_id=PAD, generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        return [PROMPT + row for row in out.tokens.tolist()]

    plain = decode(repetition())
    assert sum(repeated_ngrams(row, n) for row in plain) > 0  # the tiny model does loop
    controlled = decode(repetition(ngram=n))
    assert [repeated_ngrams(row, n) for row in controlled] == [0, 0, 0]


def test_repetition_penalty_raises_the_share_of_distinct_tokens() -> None:
    def greedy(penalty: float) -> list[int]:
        out = guided_decode(
            CausalStream.prefill(MODEL, [PROMPT], PAD), None,
            repetition(penalty, 0), max_new_tokens=30, vocab_size=VOCAB,
            eos_ids=frozenset(), pad_id=PAD, generator=None, sample=False,
        )  # fmt: skip
        return out.tokens[0].tolist()

    plain, penalized = greedy(1.0), greedy(3.0)
    assert len(set(penalized)) > len(set(plain))


@pytest.mark.parametrize("token", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunk_search_rows_keep_their_own_history_through_reordering(
    token: bool, seed: int
) -> None:
    """W·K rows, pruned every 3 tokens: any mixing of rows' ids would let n-grams repeat."""
    n = 3
    plain = search(seed=seed, token=token)
    assert any(repeated_ngrams(PROMPT + list(b.token_ids), n) for b in plain.beams)
    controlled = search(seed=seed, token=token, no_repeat_ngram_size=n, repetition_penalty=1.2)
    assert len(controlled.chunks) == 8 and controlled.chunks[0].rows == 4
    for beam in controlled.beams:
        assert len(beam.token_ids) == 24
        assert repeated_ngrams(PROMPT + list(beam.token_ids), n) == 0


def test_search_defaults_are_off_like_generate() -> None:
    assert (
        search(seed=3).best.token_ids
        == search(seed=3, repetition_penalty=1.0, no_repeat_ngram_size=0).best.token_ids
    )
    with pytest.raises(ConfigError, match="no_repeat_ngram_size"):
        search(no_repeat_ngram_size=-2)


# -- IVGChatModel and the CLI ------------------------------------------------------------------


def test_chat_model_defaults_on_trace_and_overrides() -> None:
    llm = IVGChatModel(
        hf_model=MODEL, tokenizer=TOK, goal={"sentiment": 4}, chunk_tokens=4, max_tokens=20, seed=0
    )
    assert (llm.repetition_penalty, llm.no_repeat_ngram_size) == (1.1, 4)
    assert llm._identifying_params["no_repeat_ngram_size"] == 4
    msg = llm.invoke("this movie")
    trace = msg.response_metadata["ivg"]
    assert (trace["repetition_penalty"], trace["no_repeat_ngram_size"]) == (1.1, 4)
    off = llm.invoke("this movie", repetition_penalty=1.0, no_repeat_ngram_size=0)
    assert off.response_metadata["ivg"]["no_repeat_ngram_size"] == 0
    assert off.content != msg.content
    ids = TOK(msg.content)["input_ids"]  # the word-level tokenizer round-trips exactly
    assert repeated_ngrams(PROMPT + ids, 4) == 0


def test_cli_flags_and_help_quote_the_model_defaults(monkeypatch, capsys) -> None:
    import hia_chain.local.embedded as embedded

    monkeypatch.setattr(embedded, "load_embedded", lambda path=None: (MODEL, TOK))
    parser = build_parser()
    help_text = parser._subparsers._group_actions[0].choices["ivg"].format_help()
    assert f"default {DEFAULT_REPETITION_PENALTY})" in help_text
    assert f"default {DEFAULT_NO_REPEAT_NGRAM_SIZE})" in help_text

    def run(*argv: str) -> dict:
        assert cli_main(["ivg", "this movie", "--max-tokens", "6", "--seed", "0",
                         "--chunk-length", "3", "--json", *argv]) == 0  # fmt: skip
        return json.loads(capsys.readouterr().out)

    default = run()
    assert (default["repetition_penalty"], default["no_repeat_ngram_size"]) == (1.1, 4)
    off = run("--repetition-penalty", "1", "--no-repeat-ngram", "0")
    assert (off["repetition_penalty"], off["no_repeat_ngram_size"]) == (1.0, 0)
    assert cli_main(["ivg", "x", "--no-repeat-ngram", "-1"]) == 2
    assert "no_repeat_ngram_size" in capsys.readouterr().err

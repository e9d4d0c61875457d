"""The guided decoding loop and its model glue, on tiny random Llamas (no downloads)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.decoding import Guidance, guided_decode  # noqa: E402
from hia_chain.local.guidance import guided_logits  # noqa: E402
from hia_chain.local.hf_adapter import (  # noqa: E402
    CausalStream,
    chat_ids,
    eos_token_ids,
    left_pad,
    logits_width,
    pad_token_id,
    positions_from_mask,
    real_vocab_size,
)
from hia_chain.local.settings import DecodeSettings  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
VOCAB = real_vocab_size(TOK)
EOS = eos_token_ids(TOK)
PAD = pad_token_id(TOK)


def ids_of(text: str, system: str | None = None) -> list[int]:
    conv = [{"role": "system", "content": system}] if system else []
    return chat_ids(TOK, [*conv, {"role": "user", "content": text}])


def decode(
    stream: CausalStream, guidance: Guidance | None = None, *, seed: int = 0, n: int = 8, **kw
):
    return guided_decode(
        stream, guidance, kw.pop("processors", DecodeSettings(temperature=0.7).processors()), max_new_tokens=n,
        vocab_size=VOCAB, eos_ids=kw.pop("eos", frozenset()), pad_id=PAD,
        generator=torch.Generator().manual_seed(seed), **kw,
    )  # fmt: skip


def test_glue_helpers() -> None:
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [1, 1, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    assert positions_from_mask(mask).tolist() == [[0, 1, 2], [0, 0, 0]]
    with pytest.raises(ConfigError, match="at least one token"):
        left_pad([[5], []], pad_id=1)
    model = tiny_model()
    assert logits_width(model) == 48 and VOCAB == 40  # padded output layer
    assert EOS == {TOK.eos_token_id} and eos_token_ids(TOK, model) == {3}
    assert TOK.decode(ids_of("good movie"), skip_special_tokens=True).startswith("user good movie")


def test_left_padded_row_equals_the_row_alone() -> None:
    model = tiny_model()
    short, long = ids_of("good"), ids_of("this movie was very good and the plot great")
    batch = CausalStream.prefill(model, [long, short], PAD)
    alone = CausalStream.prefill(model, [short], PAD)
    torch.testing.assert_close(batch.logits[1], alone.logits[0], atol=1e-5, rtol=1e-5)
    both = decode(batch, n=10, sample=False)
    single = decode(alone, n=10, sample=False)
    assert both.tokens[1].tolist() == single.tokens[0].tolist()
    torch.testing.assert_close(batch.logits[1], alone.logits[0], atol=1e-4, rtol=1e-4)


def _no_cache_reference(model, prompts, tuned_prompt, beta, n, seed, processors):
    """Re-encode every prefix at every step (O(T²)): what the cached loop must reproduce."""
    g = torch.Generator().manual_seed(seed)
    rows, tuned_rows = [list(p) for p in prompts], [list(tuned_prompt) for _ in prompts]
    out = []
    for _ in range(n):

        def last(seqs):
            ids, mask = left_pad(seqs, PAD)
            return model(
                input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask)
            ).logits[:, -1, :VOCAB]

        z_base, z_tuned = last(rows), last(tuned_rows)
        z = processors(None, guided_logits(z_base, [z_tuned], z_base, beta))
        nxt = torch.multinomial(z.softmax(-1), 1, generator=g).squeeze(1)
        for r, t, tok in zip(rows, tuned_rows, nxt.tolist(), strict=True):
            r.append(tok)
            t.append(tok)
        out.append(nxt)
    return torch.stack(out, 1)


@torch.no_grad()
def test_kv_cache_path_equals_no_cache_recomputation() -> None:
    model = tiny_model(seed=1)
    prompts = [ids_of("the movie"), ids_of("i hate this boring film")]
    tuned_prompt = ids_of("the movie", system="write very positive reviews")
    processors = DecodeSettings(temperature=0.9, top_k=12, top_p=0.95).processors()
    base = CausalStream.prefill(model, prompts, PAD)
    tuned = CausalStream.prefill(model, [tuned_prompt, tuned_prompt], PAD)
    got = decode(base, Guidance([tuned], None, beta=2.0), n=12, seed=3, processors=processors)
    want = _no_cache_reference(model, prompts, tuned_prompt, 2.0, 12, 3, processors)
    assert torch.equal(got.tokens, want)
    assert got.log_ratio.abs().sum() > 0  # the implicit value accumulated on the way


@torch.no_grad()
def test_plain_decode_matches_transformers_generate_with_the_same_seed() -> None:
    model = tiny_model(seed=2, vocab_size=VOCAB)  # no padding: generate samples all 40 ids
    prompt = ids_of("this movie")
    stream = CausalStream.prefill(model, [prompt], PAD)
    ours = decode(
        stream, n=10, seed=7, processors=DecodeSettings(temperature=0.7, top_k=10).processors()
    )
    torch.manual_seed(7)
    x = torch.tensor([prompt])
    ref = model.generate(
        x, attention_mask=torch.ones_like(x), do_sample=True, temperature=0.7, top_k=10,
        top_p=None, max_new_tokens=10, min_new_tokens=10, pad_token_id=PAD, eos_token_id=None,
    )  # fmt: skip
    assert ours.tokens[0].tolist() == ref[0, len(prompt) :].tolist()


class ForceEos:
    """A test processor: row r must end after ``after[r]`` new tokens."""

    def __init__(self, prompt_len: int, after: list[int]) -> None:
        self.prompt_len, self.after = prompt_len, after

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        out = scores.clone()
        for row, limit in enumerate(self.after):
            if input_ids.shape[1] - self.prompt_len >= limit:
                out[row] = -torch.inf
                out[row, TOK.eos_token_id] = 0.0
        return out


def test_ended_rows_emit_pad_and_count_their_eos() -> None:
    model = tiny_model()
    prompt = ids_of("good")
    stream = CausalStream.prefill(model, [prompt, prompt], PAD)
    out = decode(stream, n=6, eos=EOS, processors=[ForceEos(len(prompt), [2, 4])])
    assert out.finished.tolist() == [True, True]
    assert out.new_tokens.tolist() == [3, 5]  # two tokens, then eos
    assert out.tokens[0, 2].item() == TOK.eos_token_id and out.tokens[0, 3:].eq(PAD).all()
    assert out.tokens.shape[1] == 5  # stopped once every row had ended
    # rows already finished on entry never decode
    again = decode(stream, n=3, eos=EOS, finished=torch.tensor([True, True]))
    assert again.tokens.shape[1] == 0 and again.new_tokens.tolist() == [0, 0]


def test_seeded_sampling_is_reproducible_and_seed_dependent() -> None:
    model = tiny_model()
    runs = [
        decode(CausalStream.prefill(model, [ids_of("the plot")] * 3, PAD), seed=s, n=12)
        for s in (0, 0, 1)
    ]
    assert torch.equal(runs[0].tokens, runs[1].tokens)
    assert not torch.equal(runs[0].tokens, runs[2].tokens)


def test_zero_beta_guidance_samples_like_no_guidance_but_still_measures() -> None:
    model = tiny_model()
    plain = decode(CausalStream.prefill(model, [ids_of("the plot")], PAD), n=10)
    tuned = CausalStream.prefill(model, [ids_of("the plot", system="be positive")], PAD)
    zero = decode(
        CausalStream.prefill(model, [ids_of("the plot")], PAD), Guidance([tuned], None, 0.0), n=10
    )
    assert torch.equal(plain.tokens, zero.tokens)
    assert zero.log_ratio.abs().item() > 0 and plain.log_ratio.item() == 0


def test_greedy_and_feed_last() -> None:
    model = tiny_model()
    stream = CausalStream.prefill(model, [ids_of("the plot")], PAD)
    width = stream.ids.shape[1]
    out = decode(stream, n=4, sample=False, feed_last=False)
    assert stream.ids.shape[1] == width + 3  # the 4th token was not fed through the model
    again = decode(
        CausalStream.prefill(model, [ids_of("the plot")], PAD), n=4, sample=False, seed=9
    )
    assert torch.equal(out.tokens, again.tokens)

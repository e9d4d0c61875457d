"""DecodeSettings: one validation for every decoding setting, and transformers' own processors
in ``generate``'s order.

Why: the chat models, chunk beam search and the FUDGE sampler all build their decoding from
it, so a rule checked here is checked everywhere, with a message that names the setting.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys

import pytest

from hia_chain.errors import ConfigError
from hia_chain.local.settings import DecodeSettings

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from transformers.generation.logits_process import (  # noqa: E402
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

IDS = torch.tensor([[5, 6, 7, 5, 6], [8, 9, 8, 9, 8]])


def test_importing_the_settings_leaves_torch_out() -> None:
    code = "import sys, hia_chain.local.settings; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_tokens": 2.0}, "max_tokens"),
        ({"beam_width": 0}, "beam_width"),
        ({"successors_per_beam": -1}, "successors_per_beam"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"temperature": -1.0}, "-1.0"),
        ({"temperature": math.nan}, "nan"),
        ({"temperature": True}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.5}, "top_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": -1.2}, "repetition_penalty"),
        ({"repetition_penalty": math.nan}, "repetition_penalty"),
        ({"repetition_penalty": True}, "repetition_penalty"),
        ({"repetition_penalty": "1.2"}, "repetition_penalty"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
        ({"no_repeat_ngram_size": 2.5}, "no_repeat_ngram_size"),
        ({"no_repeat_ngram_size": True}, "no_repeat_ngram_size"),
    ],
)
def test_each_setting_is_validated_by_name(kwargs: dict, bad: str) -> None:
    with pytest.raises(ConfigError, match=bad):
        DecodeSettings(**kwargs)
    with pytest.raises(ConfigError, match=bad):  # replace() builds a new, checked object
        dataclasses.replace(DecodeSettings(), **kwargs)


def test_defaults_are_plain_sampling_like_generate() -> None:
    settings = DecodeSettings()
    assert settings.sample and settings.processors() == []
    assert (settings.beam_width, settings.successors_per_beam, settings.chunk_tokens) == (
        1,
        1,
        None,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.temperature = 0.5  # type: ignore[misc]


def test_chain_is_transformers_own_in_generate_order() -> None:
    class Extra:
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            return scores + 0.0

    extra = Extra()
    chain = DecodeSettings(
        temperature=0.7, top_k=5, top_p=0.9, repetition_penalty=1.3, no_repeat_ngram_size=2
    ).processors([extra])
    assert [type(p) for p in chain] == [
        RepetitionPenaltyLogitsProcessor,
        NoRepeatNGramLogitsProcessor,
        Extra,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    ]
    assert DecodeSettings(temperature=1.0, top_p=1.0).processors() == []
    greedy = DecodeSettings(temperature=0.0)
    assert not greedy.sample and greedy.processors() == []  # the caller takes the argmax


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chain_output_equals_the_warpers_applied_in_turn_and_never_mutates(seed: int) -> None:
    scores = torch.randn((2, 50), generator=torch.Generator().manual_seed(seed)) * 3
    before = scores.clone()
    expected = scores
    for p in (
        RepetitionPenaltyLogitsProcessor(1.3),
        NoRepeatNGramLogitsProcessor(2),
        TemperatureLogitsWarper(0.7),
        TopKLogitsWarper(20),
        TopPLogitsWarper(0.9),
    ):
        expected = p(IDS, expected)
    chain = DecodeSettings(
        temperature=0.7, top_k=20, top_p=0.9, repetition_penalty=1.3, no_repeat_ngram_size=2
    ).processors()
    assert torch.equal(chain(IDS, scores), expected) and torch.equal(scores, before)

"""Tiny random Llama models and a word-level tokenizer with a chat template, built offline.

The tokenizer's 40 real tokens include VADER sentiment words, so text scorers give different
values to different samples; the model's output layer is 48 wide, so every test also runs
through vocabulary padding (logits wider than the tokenizer).
"""

from __future__ import annotations

from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

SPECIALS = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
WORDS = [
    "system",
    "user",
    "assistant",
    "the",
    "a",
    "movie",
    "film",
    "is",
    "was",
    "and",
    "it",
    "good",
    "great",
    "wonderful",
    "love",
    "happy",
    "bad",
    "awful",
    "terrible",
    "hate",
    "boring",
    "plot",
    "actors",
    "story",
    "very",
    "not",
    "i",
    "this",
    "be",
    "positive",
    "write",
    "review",
    "reviews",
    ".",
    "!",
    ",",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
    "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}"
)
LOGITS_WIDTH = 48


def tiny_tokenizer(words: list[str] | None = None) -> PreTrainedTokenizerFast:
    """A word-level tokenizer: ``<|im_end|>`` is eos, ``<pad>`` is pad."""
    vocab = {t: i for i, t in enumerate(SPECIALS + (WORDS if words is None else words))}
    raw = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    raw.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="<unk>",
        pad_token="<pad>",
        eos_token="<|im_end|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_model(seed: int = 0, vocab_size: int = LOGITS_WIDTH, hidden: int = 32) -> LlamaForCausalLM:
    """A 2-layer random Llama; weights scaled up so samples differ visibly between rows."""
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=3,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)
    model.generation_config.eos_token_id = 3
    model.generation_config.pad_token_id = 1
    return model.eval()


def tiny_model_and_tokenizer(seed: int = 0) -> tuple[LlamaForCausalLM, Any]:
    """``(model, tokenizer)``: the tiny Llama and the word-level chat tokenizer."""
    return tiny_model(seed), tiny_tokenizer()

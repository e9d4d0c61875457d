"""IVG speed and sentiment-steering benchmarks on the embedded model (CPU).

``python -m hia_chain.bench.ivg_speed`` prints two tables:

* **speed** — the same prompts and the same number of new tokens (end-of-sequence is
  suppressed so every method writes exactly ``--max-tokens``) for plain
  ``model.generate``, the package's loop without guidance, token-level guidance, chunk-level
  search (W = K = 2 and 4, L = 5 and 30) and IVG. Each method's answer tokens/s is shown as a
  slowdown ratio to plain ``generate`` on the same prompt (batch 1), next to the *ideal* ratio:
  the row-forward passes per answer token (models per token × rows decoded), e.g. token
  guidance with the self-contrast pair = 2 models × 1 row = 2×, chunk W = K = 2 = 1 × 4 = 4×.
  Each is also shown against plain ``generate`` with the *same batch* (W·K sampled rows):
  there the ideal is the number of models per token (1 for chunk search, 2 with token
  guidance), so the gap is the loop's own overhead (scoring, pruning, cache reordering).
  Each method runs in its own spawned process so its peak resident memory
  (``getrusage(RUSAGE_SELF).ru_maxrss``; ``tracemalloc`` misses torch's allocations) is its
  own; the table shows the peak and the rise above the loaded model.
* **sentiment** (``--sentiment``) — :func:`sentiment_steering`: base sampling, best-of-N,
  token guidance, chunk guidance and IVG on IMDB review prefixes (the IVG paper's
  controlled-sentiment task): mean sentiment reward and VADER compound with the seed-to-seed
  spread, distinct-2 (:func:`distinct_n`: the share of an answer's word bigrams that are
  distinct, 1 = no bigram repeated; the mean over answers) and answer tokens/s. Every method
  runs with IVGChatModel's default repetition control; the rows marked "no rep. control"
  switch it off, to show what it buys.

Medians over ``--repeats`` runs per prompt. Set ``OMP_NUM_THREADS`` for a fair single-thread
figure; the script also calls ``torch.set_num_threads`` with ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["SPEED_METHODS", "SpeedMethod", "distinct_n", "run_speed", "sentiment_steering"]

_PROMPTS = [
    "Continue this movie review: I went to see this film expecting very little, and",
    "Write a short paragraph about why people enjoy walking in the rain.",
    "Explain in simple words how a bicycle stays upright.",
]


@dataclass(frozen=True)
class SpeedMethod:
    """One row of the speed table: a decoding setting and its forward-pass count."""

    name: str
    kind: str  # "generate", "loop"
    token: bool = False
    beam_width: int = 1
    successors: int = 1
    chunk: int | None = None

    @property
    def rows(self) -> int:
        return self.beam_width * self.successors

    @property
    def ideal(self) -> float:
        """Row-forward passes per answer token relative to plain decoding."""
        return (2 if self.token else 1) * self.rows


SPEED_METHODS: tuple[SpeedMethod, ...] = (
    SpeedMethod("generate (HF)", "generate"),
    SpeedMethod("generate (HF), 4 rows", "generate", beam_width=2, successors=2),
    SpeedMethod("generate (HF), 16 rows", "generate", beam_width=4, successors=4),
    SpeedMethod("loop, no guidance", "loop"),
    SpeedMethod("token β=2", "loop", token=True),
    SpeedMethod("chunk W=K=2 L=5", "loop", beam_width=2, successors=2, chunk=5),
    SpeedMethod("chunk W=K=2 L=30", "loop", beam_width=2, successors=2, chunk=30),
    SpeedMethod("chunk W=K=4 L=5", "loop", beam_width=4, successors=4, chunk=5),
    SpeedMethod("chunk W=K=4 L=30", "loop", beam_width=4, successors=4, chunk=30),
    SpeedMethod("IVG W=K=2 L=5 β=2", "loop", token=True, beam_width=2, successors=2, chunk=5),
)


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux (bytes on macOS)
    scale = 1 / 1024 / 1024 if sys.platform == "darwin" else 1 / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def _time_method(
    method: SpeedMethod, prompts: list[str], tokens: int, repeats: int, threads: int
) -> dict[str, Any]:
    """Run in a fresh process: load the model, time ``method``, report times and peak RSS."""
    import torch

    from hia_chain.local.beam import chunk_beam_search
    from hia_chain.local.decoding import Guidance
    from hia_chain.local.embedded import load_embedded
    from hia_chain.local.guidance import goal_system_prompt, with_system_prompt
    from hia_chain.local.hf_adapter import CausalStream, chat_ids, pad_token_id, real_vocab_size
    from hia_chain.local.settings import DecodeSettings
    from hia_chain.local.values import ScorerValue
    from hia_chain.scorers.text import BUILTIN_OBJECTIVES, SentimentScorer

    torch.set_num_threads(threads)
    model, tok = load_embedded()
    with (
        torch.no_grad()
    ):  # touch every weight (safetensors pages them in lazily) before the baseline
        model(input_ids=torch.tensor([chat_ids(tok, [{"role": "user", "content": "hi"}])]))
    loaded = _rss_mb()
    goal = {"sentiment": 4.0}
    value = ScorerValue(SentimentScorer(), goal)
    system = goal_system_prompt(goal, list(BUILTIN_OBJECTIVES.values()))
    pad, vocab = pad_token_id(tok), real_vocab_size(tok)
    settings = DecodeSettings(
        max_tokens=tokens,
        temperature=0.7,
        beam_width=method.beam_width,
        successors_per_beam=method.successors,
        chunk_tokens=method.chunk,
    )
    times: list[list[float]] = []
    for prompt in prompts:
        conv = [{"role": "user", "content": prompt}]
        ids = chat_ids(tok, conv)
        runs = []
        for rep in range(repeats + 1):  # the first run warms up and is dropped
            started = time.perf_counter()
            if method.kind == "generate":
                torch.manual_seed(rep)
                x = torch.tensor([ids])
                with torch.no_grad():
                    model.generate(
                        x,
                        attention_mask=torch.ones_like(x),
                        do_sample=True,
                        temperature=0.7,
                        top_k=None,
                        top_p=None,
                        max_new_tokens=tokens,
                        min_new_tokens=tokens,
                        pad_token_id=pad,
                        num_return_sequences=method.rows,
                    )
            else:
                guidance = None
                if method.token:
                    tuned = CausalStream.prefill(
                        model, [chat_ids(tok, with_system_prompt(conv, system))], pad
                    )
                    guidance = Guidance([tuned], None, beta=2.0)
                chunk_beam_search(
                    CausalStream.prefill(model, [ids], pad),
                    guidance,
                    value if method.beam_width * method.successors > 1 else None,
                    settings,
                    prompt=prompt,
                    decode=lambda t: tok.decode(list(t), skip_special_tokens=True),
                    vocab_size=vocab,
                    eos_ids=frozenset(),
                    pad_id=pad,
                    generator=torch.Generator().manual_seed(rep),
                )
            if rep:
                runs.append(time.perf_counter() - started)
        times.append(runs)
    return {"times": times, "peak_mb": _rss_mb(), "loaded_mb": loaded}


def run_speed(
    prompts: Sequence[str] = _PROMPTS[:2],
    *,
    max_new_tokens: int = 32,
    repeats: int = 3,
    threads: int = 1,
    methods: Sequence[SpeedMethod] = SPEED_METHODS,
) -> list[dict[str, Any]]:
    """Time every method in its own process; one dict per method (ratios to ``generate``)."""
    ctx = multiprocessing.get_context("spawn")
    raw = {}
    for method in methods:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            args = (method, list(prompts), max_new_tokens, repeats, threads)
            raw[method.name] = pool.submit(_time_method, *args).result()
    generate_by_rows = {m.rows: raw[m.name]["times"] for m in methods if m.kind == "generate"}

    def ratio_to(times: list[list[float]], base: list[list[float]]) -> float:
        per_prompt = zip(times, base, strict=True)
        return statistics.median(statistics.median(t) / statistics.median(b) for t, b in per_prompt)

    rows = []
    for method in methods:
        r = raw[method.name]
        seconds = statistics.median(x for t in r["times"] for x in t)
        ratio = ratio_to(r["times"], generate_by_rows[1]) if 1 in generate_by_rows else math.nan
        same = generate_by_rows.get(method.rows)
        same_ratio = ratio_to(r["times"], same) if same and method.kind == "loop" else None
        rows.append(
            {
                "method": method.name,
                "ideal_ratio": method.ideal,
                "median_seconds": seconds,
                "tokens_per_second": max_new_tokens / seconds,
                "ratio": ratio,
                "efficiency": method.ideal / ratio,
                "same_batch_ideal": 2.0 if method.token else 1.0,
                "same_batch_ratio": same_ratio,
                "peak_mb": r["peak_mb"],
                "rise_mb": r["peak_mb"] - r["loaded_mb"],
            }
        )
    return rows


def _imdb_path() -> Path | None:
    for root in (Path.cwd(), Path(__file__).resolve().parents[2]):
        for parent in [root, *root.parents][:3]:
            candidate = parent / "shared" / "data" / "imdb_reviews.jsonl"
            if candidate.is_file():
                return candidate
    return None


def distinct_n(text: str, n: int = 2) -> float:
    """Distinct n-grams / n-grams of one answer's lowercased words (1.0 when it has none).

    Per answer, not pooled over answers: the question is whether one answer repeats itself
    (the 135M model loops on a sentence), not whether different prompts get different answers.
    """
    words = text.lower().split()
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


_NO_REPETITION_CONTROL = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}

STEERING_METHODS: dict[str, dict[str, Any]] = {
    "base, no rep. control": {"guidance": "none", **_NO_REPETITION_CONTROL},
    "base": {"guidance": "none"},
    "best-of-4": {
        "guidance": "chunk",
        "beam_width": 1,
        "successors_per_beam": 4,
        "chunk_tokens": None,
    },
    "token β=2": {"guidance": "token", "beta": 2.0},
    "chunk W=K=2 L=8": {
        "guidance": "chunk",
        "beam_width": 2,
        "successors_per_beam": 2,
        "chunk_tokens": 8,
    },
    "IVG W=K=2 L=8 β=2": {
        "guidance": "both",
        "beta": 2.0,
        "beam_width": 2,
        "successors_per_beam": 2,
        "chunk_tokens": 8,
    },
    "IVG, no rep. control": {
        "guidance": "both",
        "beta": 2.0,
        "beam_width": 2,
        "successors_per_beam": 2,
        "chunk_tokens": 8,
        **_NO_REPETITION_CONTROL,
    },
}


def sentiment_steering(
    n_prompts: int = 6,
    seeds: Sequence[int] = (0, 1),
    max_new_tokens: int = 32,
    *,
    methods: dict[str, dict[str, Any]] | None = None,
    data_path: Path | None = None,
    model: Any = None,
    tokenizer: Any = None,
) -> list[dict[str, Any]]:
    """Steer IMDB review continuations toward sentiment 4 with each method.

    Returns one dict per method: ``reward`` (mean euclidean reward toward sentiment 4, in
    [-1, 0]), ``compound`` (mean VADER compound), ``distinct2`` (mean per-answer
    :func:`distinct_n`), their seed-to-seed ``*_spread`` (max − min of the per-seed means),
    ``tokens_per_second`` (answer tokens / wall time) and ``seconds``.

    Raises:
        ConfigError: the IMDB file is missing.
    """
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from hia_chain.errors import ConfigError
    from hia_chain.local.embedded import load_embedded
    from hia_chain.local.ivg_chat_model import IVGChatModel
    from hia_chain.local.values import ScorerValue
    from hia_chain.scorers.text import SentimentScorer

    path = data_path or _imdb_path()
    if path is None or not path.is_file():
        msg = "IMDB prefixes not found: expected ../shared/data/imdb_reviews.jsonl (or pass data_path)."
        raise ConfigError(msg)
    rows = [json.loads(line) for line in path.read_text().splitlines()[:n_prompts]]
    prompts = [f"Continue this movie review: {r['prefix']}" for r in rows]
    if model is None or tokenizer is None:
        model, tokenizer = load_embedded()
    reward, vader = ScorerValue(SentimentScorer(), {"sentiment": 4}), SentimentIntensityAnalyzer()
    out = []
    for name, settings in (methods or STEERING_METHODS).items():
        llm = IVGChatModel(
            hf_model=model,
            tokenizer=tokenizer,
            goal={"sentiment": 4},
            max_tokens=max_new_tokens,
            **settings,
        )
        per_seed_reward, per_seed_compound, per_seed_distinct, tokens, seconds = [], [], [], 0, 0.0
        for seed in seeds:
            started = time.perf_counter()
            messages = [llm.invoke(p, seed=seed) for p in prompts]
            seconds += time.perf_counter() - started
            texts = [m.text for m in messages]
            tokens += sum(m.usage_metadata["output_tokens"] for m in messages if m.usage_metadata)
            per_seed_reward.append(statistics.mean(reward("", texts)))
            per_seed_compound.append(
                statistics.mean(vader.polarity_scores(t)["compound"] for t in texts)
            )
            per_seed_distinct.append(statistics.mean(distinct_n(t, 2) for t in texts))
        out.append(
            {
                "method": name,
                "reward": statistics.mean(per_seed_reward),
                "reward_spread": max(per_seed_reward) - min(per_seed_reward),
                "compound": statistics.mean(per_seed_compound),
                "compound_spread": max(per_seed_compound) - min(per_seed_compound),
                "per_seed_compound": per_seed_compound,
                "distinct2": statistics.mean(per_seed_distinct),
                "distinct2_spread": max(per_seed_distinct) - min(per_seed_distinct),
                "tokens_per_second": tokens / seconds,
                "seconds": seconds,
                "prompts": len(prompts),
                "seeds": list(seeds),
            }
        )
    return out


def _print_speed(rows: list[dict[str, Any]], tokens: int, prompts: int, repeats: int) -> None:
    print(
        f"\nIVG speed: embedded model, CPU, {prompts} prompts x {repeats} repeats, {tokens} new tokens"
    )
    print("ratios: time per answer / plain generate with 1 row, and with the same rows (W·K)")
    print(
        f"{'method':<24}{'ideal x':>8}{'meas. x':>8}{'same-batch ideal':>17}{'same-batch x':>13}"
        f"{'median s':>9}{'tok/s':>7}{'peak MB':>8}{'rise MB':>8}"
    )
    for r in rows:
        same = r["same_batch_ratio"]
        same_cells = (
            f"{r['same_batch_ideal']:>17.0f}{same:>13.2f}" if same is not None else f"{'':>30}"
        )
        print(
            f"{r['method']:<24}{r['ideal_ratio']:>8.0f}{r['ratio']:>8.2f}{same_cells}"
            f"{r['median_seconds']:>9.2f}{r['tokens_per_second']:>7.1f}{r['peak_mb']:>8.0f}{r['rise_mb']:>8.0f}"
        )


def _print_sentiment(rows: list[dict[str, Any]]) -> None:
    first = rows[0]
    print(
        f"\nSentiment steering: {first['prompts']} IMDB prefixes x seeds {first['seeds']}, target sentiment 4"
    )
    print(
        f"{'method':<24}{'reward':>8}{'±spread':>9}{'VADER':>8}{'±spread':>9}{'dist-2':>8}"
        f"{'±spread':>9}{'tok/s':>8}{'seconds':>9}"
    )
    for r in rows:
        print(
            f"{r['method']:<24}{r['reward']:>8.3f}{r['reward_spread']:>9.3f}{r['compound']:>8.3f}"
            f"{r['compound_spread']:>9.3f}{r['distinct2']:>8.3f}{r['distinct2_spread']:>9.3f}"
            f"{r['tokens_per_second']:>8.1f}{r['seconds']:>9.1f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: speed table, and the sentiment table with ``--sentiment``."""
    from hia_chain.cli.options import deprecated_alias

    parser = argparse.ArgumentParser(
        prog="python -m hia_chain.bench.ivg_speed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--prompts", type=int, default=2, help="speed prompts (max 3)")
    parser.add_argument(
        "--max-tokens", type=int, default=32, metavar="N", help="new tokens per answer"
    )
    deprecated_alias(parser, "--max-new-tokens", "--max-tokens", type=int)  # the old spelling
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--sentiment", action="store_true", help="also run sentiment_steering")
    parser.add_argument("--sentiment-prompts", type=int, default=6)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    if not args.skip_speed:
        rows = run_speed(
            _PROMPTS[: args.prompts],
            max_new_tokens=args.max_tokens,
            repeats=args.repeats,
            threads=args.threads,
        )
        _print_speed(rows, args.max_tokens, args.prompts, args.repeats)
        results["speed"] = rows
    if args.sentiment:
        import torch

        torch.set_num_threads(args.threads)
        rows = sentiment_steering(args.sentiment_prompts, max_new_tokens=args.max_tokens)
        _print_sentiment(rows)
        results["sentiment"] = rows
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

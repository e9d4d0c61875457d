"""Steer a local model while it decodes: IVG (integrated value guidance) on the embedded SmolLM2.

Use case: the weights are yours (a local or self-hosted model), so instead of searching over
prompts (HIA, for black-box APIs) you can guide decoding itself toward a goal. ``IVGChatModel``
is a LangChain chat model that does it in two ways, alone or together:

* token level (``guidance="token"``): every next-token distribution is pushed by
  ``beta · (z_guide − z_reference)``, here from the same model with and without a system prompt
  that describes the goal (a tuning-free guide pair);
* chunk level (``guidance="chunk"``): chunk-level beam search, scoring every partial answer
  with the goal's value function every few tokens and keeping the best beams;
* both (``guidance="both"``): IVG.

The script continues a movie-review opening with a "very positive" goal (sentiment 4 on 0–4)
under plain sampling, token guidance and full IVG, and prints each continuation's measured
sentiment and decoding time. IVG needs the weights, so there is no ``--base-url`` here;
``--model`` takes a local transformers model folder instead of the embedded model.

Run it (offline)::

    python cookbook/ivg_steering.py
    python cookbook/ivg_steering.py --model /path/to/a/transformers/folder
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from hia_chain.local import load_embedded
from hia_chain.local.ivg_chat_model import IVGChatModel
from hia_chain.scorers.text import SentimentScorer

MAX_TOKENS = 40
GOAL = {"sentiment": 4.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a local transformers model folder (default: embedded)")
    parser.add_argument(
        "--prompt", default="Continue this movie review in two sentences: The plot was"
    )
    args = parser.parse_args()

    # Load once, outside the timings; every mode shares the same weights.
    model, tokenizer = load_embedded(Path(args.model) if args.model else None)
    sentiment = SentimentScorer()
    print(f"Prompt: {args.prompt}\nGoal: {GOAL}")
    for mode in ("none", "token", "both"):
        llm = IVGChatModel(
            hf_model=model,
            tokenizer=tokenizer,
            goal=GOAL,
            guidance=mode,
            max_tokens=MAX_TOKENS,
            beam_width=2,  # W beams ...
            successors_per_beam=2,  # ... times K samples each: 4 rows decoded as one batch
            chunk_tokens=10,  # rescore and prune every 10 tokens
            seed=0,
        )
        started = time.perf_counter()
        message = llm.invoke(args.prompt)
        seconds = time.perf_counter() - started
        score = sentiment.score_text(message.text)
        print(f"{mode:>5}: sentiment {score:.2f} in {seconds:.1f} s | {message.text.strip()}")


if __name__ == "__main__":
    main()

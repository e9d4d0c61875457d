"""Align any OpenAI-compatible endpoint: ``ChatOpenAI(base_url=...)`` inside AlignedChatModel.

Use case: the response model is a black box behind an HTTP API (OpenAI, vLLM, Ollama, a
gateway, ``transformers serve``). HIA needs nothing from it but chat completions: the prompt
search and the scoring run on your side, and every request costs at most ``budget`` calls.
``get_usage_metadata_callback`` shows the tokens the endpoint billed, under its model name,
counted once.

Without ``--base-url`` the script starts ``transformers serve`` on the embedded SmolLM2 (on
127.0.0.1, offline; needs the ``[serving]`` extra) so it runs out of the box::

    python cookbook/openai_endpoint.py
    python cookbook/openai_endpoint.py --base-url https://api.openai.com/v1 --model gpt-4o-mini
    # the API key comes from $OPENAI_API_KEY (any placeholder for local servers)
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

from langchain_core.callbacks import get_usage_metadata_callback
from langchain_openai import ChatOpenAI

from hia_chain import AlignedChatModel

MAX_TOKENS = 32


@contextmanager
def endpoint(base_url: str | None, model: str | None) -> Iterator[tuple[str, str]]:
    """The given endpoint, or the embedded model served locally for the script's duration."""
    if base_url:
        yield base_url, model or "default"
        return
    from hia_chain.local import embedded_model_path, serve_model

    print("No --base-url: serving the embedded model with `transformers serve` ...")
    with serve_model(embedded_model_path(), threads=1) as served:
        yield served.base_url, served.model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://host/v1")
    parser.add_argument("--model", help="model name at the endpoint")
    parser.add_argument("--question", default="What is the capital of France, and why?")
    args = parser.parse_args()

    with endpoint(args.base_url, args.model) as (base_url, model):
        llm = ChatOpenAI(
            base_url=base_url,
            model=model,
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            max_tokens=MAX_TOKENS,
            temperature=0.7,
            max_retries=0,  # retries are the budget's: every attempt is counted
        )
        aligned = AlignedChatModel(model=llm, goal={"verbosity": 1, "sentiment": 3}, budget=2)
        with get_usage_metadata_callback() as usage:
            message = aligned.invoke(args.question)
        trace = message.response_metadata["hia"]

    print(f"Endpoint: {base_url} ({model})")
    print(f"Answer: {message.text.strip()}")
    scores = ", ".join(f"{k} {v:.1f}" for k, v in trace["scores"].items())
    print(f"Goal {trace['goal']} -> measured {scores}; {trace['calls']} of {trace['budget']} calls")
    for name, used in usage.usage_metadata.items():
        print(f"Tokens billed by {name}: {used['input_tokens']} in, {used['output_tokens']} out")


if __name__ == "__main__":
    main()

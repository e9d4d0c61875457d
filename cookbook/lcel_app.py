"""An LCEL app with an aligned model in the middle: prompt template | aligned model | parser.

Use case: you already have a LangChain chain and want its answers steered toward a goal (here:
short and upbeat) without touching the rest of the chain. ``AlignedChatModel`` is a drop-in
chat model, so it slots between the prompt and the parser. The search reports its progress as
LangChain custom events (``hia_proposed``, ``hia_round``, ``hia_response``, ``hia_done``): a
callback handler (as here) or ``astream_events`` can turn them into a progress display.

Run it (defaults to the embedded SmolLM2, offline)::

    python cookbook/lcel_app.py
    python cookbook/lcel_app.py --base-url http://127.0.0.1:8000/v1 --model my-model
"""

from __future__ import annotations

import argparse
import os
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate

from hia_chain import AlignedChatModel

MAX_TOKENS = 40


def response_model(base_url: str | None, model: str | None) -> BaseChatModel:
    """The black-box model to align: any OpenAI-compatible endpoint, else the embedded one."""
    if base_url:
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=base_url,
            model=model or "default",
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            max_tokens=MAX_TOKENS,
            temperature=0.7,
            max_retries=0,  # retries are the budget's: every attempt is counted
        )
    from hia_chain.local import LocalChatModel

    return LocalChatModel(model_path=model, max_tokens=MAX_TOKENS, temperature=0.7, seed=0)


class Progress(BaseCallbackHandler):
    """Prints the search's progress events as they happen."""

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name == "hia_round":
            print(
                f"[hia] round {data['round']}: {data['proposed']} prompts proposed, "
                f"sending candidates {data['sending']}"
            )
        elif name == "hia_response":
            print(f"[hia] candidate {data['candidate']} answered")
        elif name == "hia_done":
            print(
                f"[hia] done: best candidate {data['best']}, reward {data['reward']:.3f}, "
                f"{data['calls']} call(s) spent"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://host/v1")
    parser.add_argument("--model", help="model name at the endpoint (or a local model folder)")
    parser.add_argument("--question", default="Why do leaves change colour in autumn?")
    args = parser.parse_args()

    aligned = AlignedChatModel(
        model=response_model(args.base_url, args.model),
        goal={"verbosity": 1, "sentiment": 3},  # short and warm, on 0–4 scales
        budget=2,  # at most two calls to the response model per question
        seed=0,
    )
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are a friendly science tutor."), ("human", "{question}")]
    )
    chain = prompt | aligned | StrOutputParser()

    answer = chain.invoke({"question": args.question}, config={"callbacks": [Progress()]})
    print(f"Question: {args.question}")
    print(f"Answer: {answer}")


if __name__ == "__main__":
    main()

"""Align without writing Python on the client: ``hia-chain serve`` + any OpenAI SDK.

Use case: an app (in any language) already talks to the OpenAI API. Point its ``base_url``
at ``hia-chain serve`` and add ``hia`` to a request: the answer is the best of ``budget``
upstream calls for that goal, with the trace in ``completion.hia``. This script starts the
server (the embedded SmolLM2 offline, or ``--upstream-base-url URL --upstream-model NAME``),
asks the same question for two users with different goals, once streamed, and prints what
each request spent. It serves with ``--heuristic learned``, so each user's answers teach that
user's own heuristic (the default, ``instruction``, is one for everyone)::

    python cookbook/aligning_server.py
"""

from __future__ import annotations

import argparse

from openai import OpenAI

from hia_chain.server import running_server

QUESTION = "What should I pack for a day hike?"
GOALS = {"ana": {"verbosity": 0}, "ben": {"verbosity": 3, "sentiment": 4}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream-base-url", help="OpenAI-compatible endpoint")
    parser.add_argument("--upstream-model", help="model name at the endpoint")
    args = parser.parse_args()
    flags = ["--heuristic", "learned"]
    if args.upstream_base_url:
        flags += [
            "--upstream-base-url",
            args.upstream_base_url,
            "--upstream-model",
            args.upstream_model,
        ]

    with running_server(flags) as server:
        print(f"Server: {server.base_url}")
        client = OpenAI(base_url=server.base_url, api_key="any", max_retries=0)
        for user, goal in GOALS.items():
            reply = client.chat.completions.create(
                model="hia",
                messages=[{"role": "user", "content": QUESTION}],
                max_tokens=24,
                user=user,  # each user gets their own learned heuristic
                extra_body={"hia": {"goal": goal, "budget": 2}},
            )
            trace = reply.model_extra["hia"]
            scores = ", ".join(f"{k} {v:.2f}" for k, v in trace["scores"].items())
            print(f"{user} | goal {goal} | measured {scores} | {trace['calls']} calls")
            print(f"  {reply.choices[0].message.content.strip()[:120]!r}")
        stream = client.chat.completions.create(
            model="hia",
            messages=[{"role": "user", "content": QUESTION}],
            max_tokens=24,
            stream=True,
            extra_body={"hia": {"goal": {"verbosity": 1}, "budget": 2}},
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        print(f"streamed: {text.strip()[:120]!r}")


if __name__ == "__main__":
    main()

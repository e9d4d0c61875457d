"""A counting OpenAI-compatible chat server on 127.0.0.1, for the server's tests and load bench.

Real HTTP (Starlette on uvicorn), no model: an answer's length follows the instructions in
the prompt ("brief" → 6 words, "in detail" → 60, else 12) and ``max_tokens``, so a
verbosity goal is reachable and measurable. It counts every chat-completion request it
received and keeps the latest bodies, so a test can check what reached the provider (the
parameters passed through, the calls a budget allowed). Streams in OpenAI's chunk format,
answers ``tools`` with ``tool_choice="required"`` by calling the first tool, and can be told
to fail (``status``) or to stall (``delay``).

Run alone (e.g. for ``hia-chain serve --upstream-base-url``)::

    python -m hia_chain.bench.fake_upstream --port 9000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FakeUpstream", "answer_text"]

MODEL = "fake-model"


def answer_text(payload: Mapping[str, Any]) -> str:
    """A reply whose length follows the prompt's instructions and ``max_tokens``."""
    parts = [m.get("content") for m in payload.get("messages", []) if isinstance(m, dict)]
    prompt = " ".join(p for p in parts if isinstance(p, str)).lower()
    words = 12
    if any(w in prompt for w in ("brief", "short", "one sentence", "concise")):
        words = 6
    if any(w in prompt for w in ("detail", "thorough", "long", "elaborate")):
        words = 60
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens") or 200
    words = max(1, min(words, int(limit)))
    return " ".join(["word"] * (words - 1) + ["done."])


@dataclass
class FakeUpstream:
    """A fake provider in a background thread: ``with FakeUpstream() as up: up.base_url``.

    Args:
        delay: Seconds every chat completion takes.
        status: Answer every chat completion with this HTTP error status (``None``: succeed).
        port: Port to listen on (0: a free one).
    """

    delay: float = 0.0
    status: int | None = None
    port: int = 0
    received: int = 0
    """Chat-completion requests received (each one a call the provider would bill)."""
    bodies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=64))
    """The latest request bodies, oldest first."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self) -> None:
        with self._lock:
            self.received = 0
            self.bodies.clear()

    # -- the app ---------------------------------------------------------------------------

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, StreamingResponse
        from starlette.routing import Route

        async def chat(request: Request) -> Any:
            payload = await request.json()
            with self._lock:
                self.received += 1
                self.bodies.append(payload)
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.status is not None:
                err = {"message": f"fake upstream error {self.status}", "type": "server_error"}
                return JSONResponse({"error": err}, status_code=self.status)
            completion = _completion(payload)
            if payload.get("stream"):
                return StreamingResponse(_sse(payload, completion), media_type="text/event-stream")
            return JSONResponse(completion)

        async def models(request: Request) -> Any:
            return JSONResponse(
                {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "fake"}]}
            )

        return Starlette(
            routes=[
                Route("/v1/chat/completions", chat, methods=["POST"]),
                Route("/v1/models", models, methods=["GET"]),
            ]
        )

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> FakeUpstream:
        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(4096)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_level="warning", access_log=False, lifespan="off", backlog=4096
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                msg = "The fake upstream did not start within 10 s."
                raise RuntimeError(msg)
            time.sleep(0.01)
        self._sock = sock
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._sock.close()


def _completion(payload: Mapping[str, Any]) -> dict[str, Any]:
    parts = [m.get("content") for m in payload.get("messages", []) if isinstance(m, dict)]
    prompt_tokens = len(json.dumps(parts).encode()) // 4 + 8
    message: dict[str, Any] = {"role": "assistant", "content": answer_text(payload)}
    finish = "stop"
    tools = payload.get("tools")
    if tools and payload.get("tool_choice") == "required":
        name = tools[0].get("function", {}).get("name", "tool")
        call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": "{}"}}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        finish = "tool_calls"
    completion_tokens = len((message["content"] or "").split()) + 1
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(payload.get("model") or MODEL),
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def _sse(payload: Mapping[str, Any], completion: dict[str, Any]) -> AsyncIterator[bytes]:
    """The completion as OpenAI chunks: one per word, a finish chunk, usage if asked."""
    base = {k: completion[k] for k in ("id", "created", "model")}
    base["object"] = "chat.completion.chunk"
    text = completion["choices"][0]["message"]["content"] or ""
    words = text.split(" ")
    for i, word in enumerate(words):
        delta: dict[str, Any] = {"content": word if i == 0 else " " + word}
        if i == 0:
            delta["role"] = "assistant"
        chunk = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        yield f"data: {json.dumps(chunk)}\n\n".encode()
    done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield f"data: {json.dumps(done)}\n\n".encode()
    if (payload.get("stream_options") or {}).get("include_usage"):
        usage = {**base, "choices": [], "usage": completion["usage"]}
        yield f"data: {json.dumps(usage)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI-compatible chat server.")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per completion")
    args = parser.parse_args()
    with FakeUpstream(delay=args.delay, port=args.port) as up:
        print(f"fake upstream at {up.base_url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()

"""A small OpenAI chat-completions server on 127.0.0.1 that injects faults, for tests and
``python -m hia_chain.bench.faults``.

Raw asyncio HTTP/1.1 with keep-alive (no framework: the faults it injects, a connection reset
after reading a request or a reply that never comes, live below what a framework exposes).
It counts every request it *received* (request line and headers read), per request tag: a
``[req N]`` marker anywhere in the last user message, which HIA's rewrites keep.

Faults, drawn per request with a seeded RNG: ``429`` (with ``Retry-After``), ``500``,
``503``, ``529`` (overloaded), ``slow`` (answers after ``slow_delay`` seconds, past the
client's timeout), ``reset`` (closes the connection without answering), ``malformed`` (200
with a body that is not JSON) and ``empty`` (200 with empty content).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAULTS", "FaultServer"]

FAULTS = ("429", "500", "503", "529", "slow", "reset", "malformed", "empty")
"""The faults drawn at random; a ``script`` may also name ``400`` (a content filter)."""
_TAG = re.compile(r"\[req (\d+)\]")
_REASONS = {200: "OK", 400: "Bad Request", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable", 529: "Overloaded"}  # fmt: skip


@dataclass
class FaultServer:
    """Answers ``POST /v1/chat/completions``; see the module docstring for the faults.

    Args:
        faults: Probability of each fault per request (the rest are answered normally).
        seed: Seed of the fault draws.
        delay: Seconds every answer takes.
        slow_delay: Seconds a ``slow`` answer takes.
        retry_after: The ``Retry-After`` header of a 429, in seconds.
    """

    faults: Mapping[str, float] = field(default_factory=dict)
    seed: int = 0
    delay: float = 0.0
    slow_delay: float = 5.0
    retry_after: float = 1.0
    script: list[str] = field(default_factory=list)
    """Faults for the first requests, in order of arrival (``ok`` for none); then random."""
    received: int = 0
    by_tag: Counter[int] = field(default_factory=Counter)
    by_fault: Counter[str] = field(default_factory=Counter)
    arrivals: list[float] = field(default_factory=list)
    """``time.monotonic()`` of each request's arrival."""
    port: int = 0

    def __post_init__(self) -> None:
        unknown = (set(self.faults) | set(self.script)) - {*FAULTS, "400", "ok"}
        if unknown:
            msg = f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}"
            raise ValueError(msg)
        if sum(self.faults.values()) > 1:
            raise ValueError("fault probabilities add up to more than 1")
        self._rng = random.Random(self.seed)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=4096)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._tasks):
            t.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=2)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    def _draw(self) -> str:
        if self.script:
            return self.script.pop(0)
        x = self._rng.random()
        for name, p in self.faults.items():
            if x < p:
                return name
            x -= p
        return "ok"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # the server is shutting down
            pass
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        line = await reader.readline()
        if not line:
            return False
        headers: dict[str, str] = {}
        while True:
            h = await reader.readline()
            if h in (b"\r\n", b"\n", b""):
                break
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        self.received += 1  # the request reached the server
        self.arrivals.append(time.monotonic())
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            payload = {}
        tag = _tag(payload)
        if tag is not None:
            self.by_tag[tag] += 1
        fault = self._draw()
        self.by_fault[fault] += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if fault == "reset":
            sock = writer.get_extra_info("socket")
            if sock is not None:  # RST rather than FIN
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return False
        if fault == "slow":
            await asyncio.sleep(self.slow_delay)
        if fault == "400":
            err: dict[str, dict[str, str | None]] = {
                "error": {
                    "message": "injected: the prompt was flagged by the content filter",
                    "type": "invalid_request_error",
                    "code": "content_filter",
                }
            }
            await _write(writer, 400, json.dumps(err).encode(), {})
            return True
        if fault in ("429", "500", "503", "529"):
            status = int(fault)
            err = {"error": {"message": f"injected {fault}", "type": "server_error", "code": None}}
            extra = {"retry-after": f"{self.retry_after:g}"} if status == 429 else {}
            await _write(writer, status, json.dumps(err).encode(), extra)
            return True
        if fault == "malformed":
            await _write(writer, 200, b'{"id": "chatcmpl-x", "choices": [ {"mess', {})
            return True
        text = "" if fault == "empty" else _answer(payload)
        await _write(writer, 200, json.dumps(_completion(payload, text)).encode(), {})
        return True


def _tag(payload: Any) -> int | None:
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if not isinstance(messages, list):
        return None
    for m in reversed(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            found = _TAG.search(content)
            if found:
                return int(found.group(1))
    return None


def _prompt(payload: Mapping[str, Any]) -> str:
    parts = [m.get("content") for m in payload.get("messages", []) if isinstance(m, dict)]
    return "\n".join(p for p in parts if isinstance(p, str))


def _answer(payload: Mapping[str, Any]) -> str:
    """A reply whose length follows the prompt's instructions, so goals can be met."""
    prompt = _prompt(payload).lower()
    limit = payload.get("max_completion_tokens") or payload.get("max_tokens") or 200
    words = 12
    if any(w in prompt for w in ("brief", "short", "one sentence", "concise")):
        words = 6
    if any(w in prompt for w in ("detail", "thorough", "long", "elaborate")):
        words = 60
    words = max(1, min(words, int(limit)))
    return " ".join(["word"] * (words - 1) + ["done."])


def _completion(payload: Mapping[str, Any], text: str) -> dict[str, Any]:
    prompt_tokens = len(_prompt(payload).encode()) // 4 + 8
    completion_tokens = len(text.split())
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": 0,
        "model": str(payload.get("model", "fault-server")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


async def _write(
    writer: asyncio.StreamWriter, status: int, body: bytes, headers: Mapping[str, str]
) -> None:
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "content-type: application/json"]
    head += [f"content-length: {len(body)}", "connection: keep-alive"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()

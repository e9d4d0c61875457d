"""Real parts shared by the whole integration session: one converted embedded model and one
``transformers serve`` process on a free 127.0.0.1 port.

Why session-scoped: converting the GGUF takes ~20 s and the server ~10 s to start; every test
of the black-box path reuses them. The server gets one torch thread and so does this process
(see the top-level conftest), so the two share the machine's two cores without thrashing.

``served.chat_openai()`` returns a ``ChatOpenAI`` on the server with HTTP clients of its own
and a counter of the chat-completion requests those clients actually sent: the tests compare
what reached the server with what the trace says was spent.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


@dataclass
class RequestCounter:
    """Chat-completion requests that left a client (thread-safe: sync and async clients)."""

    count: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _hit(self, request: httpx.Request) -> None:
        if request.url.path.endswith("/chat/completions"):
            with self._lock:
                self.count += 1

    def hook(self, request: httpx.Request) -> None:
        self._hit(request)

    async def ahook(self, request: httpx.Request) -> None:
        self._hit(request)


@dataclass(frozen=True)
class Served:
    """The session's server: where it is and how to talk to it."""

    base_url: str
    model: str
    cache_dir: Path
    log_path: Path

    def chat_openai(self, **kw: Any) -> tuple[Any, RequestCounter]:
        """A ``ChatOpenAI`` on this server and the counter of requests it sends."""
        from langchain_openai import ChatOpenAI

        counter = RequestCounter()
        kw.setdefault("max_retries", 0)
        llm = ChatOpenAI(
            base_url=self.base_url,
            model=self.model,
            api_key="not-needed",
            http_client=httpx.Client(event_hooks={"request": [counter.hook]}),
            http_async_client=httpx.AsyncClient(event_hooks={"request": [counter.ahook]}),
            **kw,
        )
        return llm, counter


@pytest.fixture(scope="session")
def embedded_path() -> Path:
    """The converted embedded model folder (converted once, in the user cache)."""
    pytest.importorskip("torch")
    from hia_chain.local.embedded import embedded_model_path

    return embedded_model_path()


@pytest.fixture(scope="session")
def served(embedded_path: Path) -> Iterator[Served]:
    """``transformers serve`` on the embedded model, 127.0.0.1 only, one thread."""
    from hia_chain.local.serve import serve_model

    with serve_model(embedded_path, threads=1) as server:
        yield Served(
            base_url=server.base_url,
            model=server.model,
            cache_dir=embedded_path.parent,
            log_path=server.log_path,
        )


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Any]:
    """A real ``redis-server`` on a free 127.0.0.1 port, in a temp dir, persisting nothing.

    Tests that stop or restart Redis start their own with ``local_redis_server()`` instead.
    """
    from hia_chain.bench.redis_server import local_redis_server

    with local_redis_server() as server:
        yield server

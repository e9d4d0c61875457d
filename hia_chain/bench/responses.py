"""Shared responses across methods: common random numbers for a fair, cheaper comparison.

The k-th time any method sends request P (prompt, system instruction, output cap) for an
item, it gets the same sampled answer. The server is asked with a seed derived from P's
messages and k, not its cap, so a capped variant's answer is (with a per-request seed) the
truncation of its uncapped twin's: the cap is compared with everything else held fixed.
Methods are then compared on identical samples, which removes sampling noise from the
differences, and a request several methods send is generated once. Every method's calls,
tokens and budget are counted as if it made each call itself.
"""

from __future__ import annotations

import hashlib
from collections import Counter

import anyio
from langchain_core.language_models import BaseChatModel

from hia_chain.factory import ask
from hia_chain.instructions import candidate_text
from hia_chain.search.types import Request, Responder, Response

__all__ = ["SharedResponses"]


def _seed(prompt: str, k: int, base: int) -> int:
    digest = hashlib.sha256(f"{base}:{k}:{prompt}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % (2**31 - 1)


class SharedResponses:
    """Caches sampled answers per (request, occurrence) for one benchmark item."""

    def __init__(self, llm: BaseChatModel, seed: int) -> None:
        self.llm = llm
        self.seed = seed
        self.generated = 0
        self._cache: dict[tuple[Request, int], Response] = {}
        self._locks: dict[tuple[Request, int], anyio.Lock] = {}

    def responder(self, offset: int = 0) -> Responder:
        """A responder for one method run (it counts its own occurrences of each request).

        ``offset`` starts every request's count there: the expected-reward oracle's r-th pass
        over the first-round candidates takes the r-th sample of each, not the first again.
        """
        seen: Counter[Request] = Counter()

        async def respond(request: Request) -> Response:
            key = (request, seen[request] + offset)
            seen[request] += 1
            lock = self._locks.setdefault(key, anyio.Lock())
            async with lock:
                if key not in self._cache:
                    text = candidate_text(request.prompt, request.system)
                    seed = _seed(text, key[1], self.seed)
                    self._cache[key] = await ask(self.llm, request, seed=seed)
                    self.generated += 1
                return self._cache[key]

        return respond

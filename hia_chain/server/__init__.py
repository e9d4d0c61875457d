"""``hia-chain serve``: an OpenAI-compatible server that aligns every request (``[server]`` extra).

Point any OpenAI client at it (``base_url="http://127.0.0.1:8000/v1"``) and pass a goal in
the ``hia`` extension field (``extra_body={"hia": {"goal": {"verbosity": 1}, "budget": 2}}``
in the SDKs): the answer is the best of ``budget`` calls to the upstream model, chosen by HIA,
with the trace in the response's top-level ``hia`` field. Without ``hia`` a request passes
through at one call. Per-key budgets (calls, tokens, cost per period) come from a keys file.

Modules, one job each: :mod:`.models` (the wire format), :mod:`.keys` (the keys file),
:mod:`.budgets` (a pool per key and period), :mod:`.upstream` (OpenAI-compatible or the
embedded model), :mod:`.align` (the search per request; with ``--heuristic learned``, a
learned heuristic per user), :mod:`.passthrough`, :mod:`.streaming` (SSE), :mod:`.errors`
(OpenAI error JSON), :mod:`.metrics`, :mod:`.app` (routes), :mod:`.launch` (uvicorn, and a
child-process helper).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "KeyRing",
    "KeySpec",
    "RunningServer",
    "ServerConfig",
    "create_app",
    "running_server",
    "serve",
]

_WHERE = {
    "KeyRing": "hia_chain.server.keys",
    "KeySpec": "hia_chain.server.keys",
    "RunningServer": "hia_chain.server.launch",
    "ServerConfig": "hia_chain.server.config",
    "create_app": "hia_chain.server.app",
    "running_server": "hia_chain.server.launch",
    "serve": "hia_chain.server.launch",
}


def __getattr__(name: str) -> Any:
    """Load names on first use, so ``import hia_chain.server`` needs no FastAPI."""
    if name not in _WHERE:
        msg = f"module 'hia_chain.server' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_WHERE[name]), name)

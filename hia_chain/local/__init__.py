"""The local path (``pip install 'hia-chain[local]'``): the embedded model, a local chat model,
IVG value-guided decoding and a ``transformers serve`` launcher.

Importing this package does not import torch: names load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "IVGChatModel",
    "LocalChatModel",
    "embedded_model_path",
    "load_embedded",
    "serve_model",
]

_WHERE = {
    "IVGChatModel": "hia_chain.local.ivg_chat_model",
    "LocalChatModel": "hia_chain.local.chat_model",
    "embedded_model_path": "hia_chain.local.embedded",
    "load_embedded": "hia_chain.local.embedded",
    "serve_model": "hia_chain.local.serve",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        msg = f"module 'hia_chain.local' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(_WHERE[name]), name)

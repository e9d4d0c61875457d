"""The one import guard of the local path: a missing ``[local]`` extra names the install command.

Every module of ``hia_chain.local`` that imports torch calls :func:`require_torch` first, so
whichever of them a user imports first, the error is the same :class:`LocalExtraMissingError`
rather than a bare ``No module named 'torch'``.
"""

from __future__ import annotations

import importlib.util

from hia_chain.errors import LocalExtraMissingError

__all__ = ["require_torch"]


def require_torch(*also: str) -> None:
    """Check that torch, transformers and the modules in ``also`` can be imported.

    Looks the modules up without importing them (``importlib.util.find_spec``), so a caller
    that only needs a path (``embedded_model_path`` for a server subprocess) does not pay for
    importing torch.

    Args:
        also: further modules the caller needs (e.g. ``"gguf"`` to convert the embedded model).

    Raises:
        LocalExtraMissingError: one of them is not installed; the message names the extra.
    """
    missing = [m for m in ("torch", "transformers", *also) if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"The local path needs {', '.join(missing)}: pip install 'hia-chain[local]'."
        raise LocalExtraMissingError(msg)

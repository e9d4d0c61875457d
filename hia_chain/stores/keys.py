"""One naming rule for observation stores' keys, so every process finds the same state."""

from __future__ import annotations

from urllib.parse import quote

from hia_chain.errors import ConfigError

__all__ = ["observation_key"]


def observation_key(user: str, model: str, *, prefix: str = "hia:obs") -> str:
    """The key of one user's observations of one response model, e.g. ``hia:obs:ana:gpt-4o``.

    What a model did for a user says nothing about another model, so the key names both.
    Both parts are percent-encoded (``:`` and ``/`` included), so no two pairs share a key.

    Raises:
        ConfigError: an empty user or model.
    """
    if not user or not model:
        msg = f"An observation key needs a user and a model, got user={user!r}, model={model!r}."
        raise ConfigError(msg)
    return f"{prefix}:{quote(user, safe='')}:{quote(model, safe='')}"

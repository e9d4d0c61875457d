"""Settings by name: one ``ConfigError`` for a bad or misspelled setting, wherever it is given.

A keyword given per call that is not a setting goes on to the wrapped model (``temperature``,
``stop``, ...), so a misspelled setting (``budjet=3``) would be silently ignored; one close to
a setting's name is refused instead, with the name it was probably meant to be. Constructor
errors that pydantic finds are turned into the same ``ConfigError`` a per-call value gets.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from hia_chain.errors import ConfigError

__all__ = ["check_names", "config_error"]

_CUTOFF = 0.75


def check_names(given: Iterable[str], known: Collection[str]) -> None:
    """Refuse names that are not settings but look like one.

    Raises:
        ConfigError: ``unknown setting 'budjet'; did you mean 'budget'?``
    """
    for name in given:
        if name in known:
            continue
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=_CUTOFF)
        if close:
            msg = f"unknown setting {name!r}; did you mean {close[0]!r}?"
            raise ConfigError(msg)


def config_error(exc: ValidationError, data: Mapping[str, Any]) -> ConfigError:
    """A pydantic validation error as one ``ConfigError`` naming the field, value and fix."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ())) or "value"
        value = err.get("input", data.get(field))
        parts.append(f"`{field}` {err.get('msg', 'is invalid').lower()}, got {value!r}")
    return ConfigError("; ".join(parts) + ".")

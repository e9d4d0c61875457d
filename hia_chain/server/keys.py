"""API keys and what each may spend: the ``--keys`` file.

A JSON file maps each key to a name (what logs and metrics show: never the key), its caps
per period, and the alignment settings it may use::

    {
      "price": {"input_per_million": 0.15, "output_per_million": 0.60},
      "keys": [
        {"name": "ana", "key": "sk-ana-...", "calls": 1000, "period": "day", "max_budget": 4},
        {"name": "ci", "key_sha256": "9f86d0...", "calls": 50, "tokens": 20000,
         "period": 3600, "searches": ["bon"]}
      ]
    }

``key_sha256`` (the hex SHA-256 of the key) keeps the secret itself out of the file. Caps
count response-model calls, tokens and cost (cost needs a ``price``, per key or file-wide),
and start afresh every ``period`` (seconds, or ``minute``/``hour``/``day``; periods are
aligned to the Unix epoch, so a daily cap resets at 00:00 UTC); no period: never.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from hia_chain.budget import Price
from hia_chain.errors import ConfigError
from hia_chain.jsonfile import read_json
from hia_chain.search.types import SearchName

__all__ = ["KeyRing", "KeySpec", "PriceSpec"]

_PERIODS = {"minute": 60.0, "hour": 3600.0, "day": 86400.0}


class PriceSpec(BaseModel):
    """Token prices of the upstream model, in your currency per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_million: float = Field(0.0, ge=0)
    output_per_million: float = Field(0.0, ge=0)

    def price(self) -> Price:
        return Price(self.input_per_million, self.output_per_million)


class KeySpec(BaseModel):
    """One API key: who it is, what it may spend per period, which settings it may use."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.@-]+$")
    """Shown in logs, metrics and budget names instead of the key."""
    key: SecretStr | None = None
    key_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    calls: int | None = Field(None, ge=0)
    """Most response-model calls per period (every aligned call and every passthrough)."""
    tokens: int | None = Field(None, ge=0)
    cost: float | None = Field(None, ge=0)
    period: float | None = None
    """Seconds (or ``minute``/``hour``/``day``) after which the caps start afresh."""
    price: PriceSpec | None = None
    max_budget: int | None = Field(None, ge=1)
    """Most ``hia.budget`` one request of this key may ask for."""
    searches: list[SearchName] | None = None
    """Searches this key may use (default: all)."""

    @field_validator("period", mode="before")
    @classmethod
    def _period(cls, value: Any) -> Any:
        if isinstance(value, str):
            if value not in _PERIODS:
                msg = f"must be a number of seconds or one of {', '.join(_PERIODS)}"
                raise ValueError(msg)
            return _PERIODS[value]
        if value is not None and not (isinstance(value, int | float) and value >= 1):
            raise ValueError("must be at least 1 second")
        return value

    def digest(self) -> str:
        if self.key is not None:
            return _sha256(self.key.get_secret_value())
        assert self.key_sha256 is not None  # noqa: S101 - checked by KeyRing
        return self.key_sha256.lower()

    def allows(self, search: str) -> bool:
        return self.searches is None or search in self.searches


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    price: PriceSpec | None = None
    keys: list[KeySpec]


class KeyRing:
    """The keys a server accepts; looks a bearer token up by its SHA-256 digest.

    Raises:
        ConfigError: duplicate names or keys, a key without a secret, a cost cap without a
            price.
    """

    def __init__(self, specs: Sequence[KeySpec], price: PriceSpec | None = None) -> None:
        self.specs = list(specs)
        self.price = price
        self._by_digest: dict[str, KeySpec] = {}
        names: set[str] = set()
        for spec in self.specs:
            where = f"key {spec.name!r}"
            if (spec.key is None) == (spec.key_sha256 is None):
                msg = f"{where}: give exactly one of `key` and `key_sha256`."
                raise ConfigError(msg)
            if spec.name in names:
                msg = f"{where}: the name is used twice; names must be unique."
                raise ConfigError(msg)
            if spec.digest() in self._by_digest:
                msg = f"{where}: the same key is listed twice."
                raise ConfigError(msg)
            if spec.cost is not None and (spec.price or price) is None:
                msg = f"{where}: a `cost` cap needs a `price` (on the key or file-wide)."
                raise ConfigError(msg)
            names.add(spec.name)
            self._by_digest[spec.digest()] = spec

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a keys file.

        Raises:
            ConfigError: unreadable, not JSON, or a bad entry (the message names it).
        """
        data = read_json(path, "the keys file")
        try:
            parsed = _KeysFile.model_validate(data)
        except ValidationError as e:
            first = e.errors()[0]
            loc = ".".join(str(p) for p in first["loc"])
            msg = f"The keys file {path}: `{loc}` {first['msg'].lower()}."
            raise ConfigError(msg) from None
        return cls(parsed.keys, parsed.price)

    def lookup(self, token: str | None) -> KeySpec | None:
        """The key ``token`` is, if any (compared by digest, in constant time per entry)."""
        if not token:
            return None
        digest = _sha256(token)
        spec = self._by_digest.get(digest)
        if spec is not None and hmac.compare_digest(spec.digest(), digest):
            return spec
        return None

    def price_of(self, spec: KeySpec) -> Price | None:
        chosen = spec.price or self.price
        return chosen.price() if chosen is not None else None

    def has_caps(self) -> bool:
        return any(
            s.calls is not None or s.tokens is not None or s.cost is not None for s in self.specs
        )


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()

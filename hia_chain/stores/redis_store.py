"""Observations in Redis: every process and host that serves a user learns into one list.

Why a list and a counter, each written by one Lua script: appending, trimming to the bound
and bumping the version happen in one step, so concurrent writers never lose an observation
to a race or leave the list over its bound, and a reader re-reads the list only when the
version moved. The client is redis-py's synchronous one (the ``[redis]`` extra): the store
protocol is sync, and :class:`~hia_chain.scorers.learned.LearnedHeuristic` reads it off the
event loop.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from hia_chain.errors import ConfigError, StoreUnavailableError
from hia_chain.redis_budget import redact_url
from hia_chain.scorers.learned import Observation

__all__ = ["RedisObservationStore"]

# KEYS: list, version. ARGV: max_size, items...
_APPEND = """
for i = 2, #ARGV do redis.call('RPUSH', KEYS[1], ARGV[i]) end
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
return redis.call('INCR', KEYS[2])
"""
_REPLACE = "redis.call('DEL', KEYS[1])\n" + _APPEND


class RedisObservationStore:
    """The latest ``max_size`` observations of one key (a user and a response model) in Redis.

    Args:
        url: The Redis server, e.g. ``redis://127.0.0.1:6379/0``.
        key: Whose observations these are, e.g. ``observation_key("ana", "gpt-4o")``; the
            data lives in ``{key}:obs`` and ``{key}:version``.
        max_size: How many of the latest observations are kept.
        timeout: Seconds one Redis operation may take.

    Raises:
        ConfigError: a bad URL, key or ``max_size``.
        StoreUnavailableError: (from each method) Redis cannot be reached; names the URL.
    """

    def __init__(self, url: str, key: str, *, max_size: int = 256, timeout: float = 5.0) -> None:
        try:
            import redis
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError as e:
            msg = "RedisObservationStore needs redis-py: pip install 'hia-chain[redis]'."
            raise ImportError(msg) from e
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            msg = f"`max_size` must be an int >= 1, got {max_size!r}."
            raise ConfigError(msg)
        if not isinstance(key, str) or not key or "{" in key or "}" in key:
            msg = f"`key` must be a non-empty string without braces, got {key!r}."
            raise ConfigError(msg)
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            msg = f"`url` must be a redis://, rediss:// or unix:// URL, got {url!r}."
            raise ConfigError(msg)
        self.url = url
        self.key = key
        self.max_size = max_size
        # Retrying is safe for reads; a retried append after a lost reply may add it twice,
        # which a bounded learning store tolerates (never a lost or corrupt list).
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        self._keys = [f"{{{key}}}:obs", f"{{{key}}}:version"]
        self._append = self._client.register_script(_APPEND)
        self._replace = self._client.register_script(_REPLACE)
        self._lock = threading.Lock()
        self._cache: tuple[int, list[Observation]] = (0, [])

    def __repr__(self) -> str:
        return f"RedisObservationStore({redact_url(self.url)!r}, key={self.key!r}, max_size={self.max_size})"

    def append(self, observation: Observation) -> None:
        """Add one observation and drop the oldest past ``max_size``, in one step."""
        with self._guard():
            self._append(keys=self._keys, args=[self.max_size, json.dumps(observation.as_dict())])

    def snapshot(self) -> tuple[int, list[Observation]]:
        """The version and the observations, oldest first (re-read only after a write)."""
        with self._guard():
            version = int(self._client.get(self._keys[1]) or 0)
            with self._lock:
                if version == self._cache[0]:
                    return version, list(self._cache[1])
            pipe = self._client.pipeline(transaction=True)  # the list that goes with the version
            pipe.get(self._keys[1])
            pipe.lrange(self._keys[0], 0, -1)
            raw_version, items = pipe.execute()
        observations = [Observation.from_dict(json.loads(item)) for item in items]
        version = int(raw_version or 0)
        with self._lock:
            self._cache = (version, observations)
        return version, list(observations)

    def replace(self, observations: Sequence[Observation]) -> None:
        """Replace every observation of this key (the latest ``max_size`` are kept)."""
        items = [json.dumps(o.as_dict()) for o in observations][-self.max_size :]
        with self._guard():
            self._replace(keys=self._keys, args=[self.max_size, *items])

    def clear(self) -> None:
        """Delete this key's observations (the version moves on, so readers see it)."""
        self.replace([])

    def close(self) -> None:
        self._client.close()

    @contextmanager
    def _guard(self) -> Iterator[Any]:
        import redis

        try:
            yield
        except redis.RedisError as e:
            url = redact_url(self.url)
            msg = (
                f"Redis at {url} is unavailable for observation store {self.key!r} "
                f"({type(e).__name__}: {e}). Check that redis-server is running and reachable."
            )
            raise StoreUnavailableError(msg, url=url) from e

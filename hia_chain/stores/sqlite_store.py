"""Observations in a SQLite file: a personalized assistant keeps what it learned across restarts.

Why SQLite: it is in the standard library, one file holds every user's state, and in WAL mode
readers never block the writer while several processes of one machine write (each write is
one ``BEGIN IMMEDIATE`` transaction, waiting up to ``timeout`` for another writer).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hia_chain.errors import ConfigError, StoreUnavailableError
from hia_chain.scorers.learned import Observation

__all__ = ["SQLiteObservationStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hia_observations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hia_observations_key ON hia_observations (key, seq);
CREATE TABLE IF NOT EXISTS hia_observation_versions (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
"""


class SQLiteObservationStore:
    """The latest ``max_size`` observations of one key (a user and a response model) in SQLite.

    Args:
        path: The database file (created if missing); many keys can share it.
        key: Whose observations these are, e.g. ``observation_key("ana", "gpt-4o")``.
        max_size: How many of the latest observations are kept (older ones are deleted).
        timeout: Seconds a write waits for another process's write to finish.

    Raises:
        ConfigError: a bad ``max_size`` or ``key``.
        StoreUnavailableError: the file cannot be opened as a database.
    """

    def __init__(
        self,
        path: str | Path,
        key: str = "default",
        *,
        max_size: int = 256,
        timeout: float = 30.0,
    ) -> None:
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            msg = f"`max_size` must be an int >= 1, got {max_size!r}."
            raise ConfigError(msg)
        if not isinstance(key, str) or not key:
            msg = f"`key` must be a non-empty string, got {key!r}."
            raise ConfigError(msg)
        self.path = Path(path)
        self.key = key
        self.max_size = max_size
        self._lock = threading.Lock()
        self._cache: tuple[int, list[Observation]] = (0, [])
        with self._guard():
            self._db = sqlite3.connect(
                self.path, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "PRAGMA synchronous=NORMAL"
            )  # WAL: durable at checkpoints, never corrupt
            self._db.executescript(_SCHEMA)

    def __repr__(self) -> str:
        return f"SQLiteObservationStore({str(self.path)!r}, key={self.key!r}, max_size={self.max_size})"

    def append(self, observation: Observation) -> None:
        """Add one observation, dropping this key's oldest past ``max_size``, in one transaction."""
        with self._lock, self._guard(), self._write():
            self._db.execute(
                "INSERT INTO hia_observations (key, data) VALUES (?, ?)",
                (self.key, json.dumps(observation.as_dict())),
            )
            self._trim()

    def snapshot(self) -> tuple[int, list[Observation]]:
        """This key's version and observations, oldest first (re-read only after a write)."""
        with self._lock, self._guard():
            version = self._version()
            if version == self._cache[0]:
                return version, list(self._cache[1])
            self._db.execute("BEGIN")  # one read transaction: the rows match the version
            try:
                version = self._version()
                rows = self._db.execute(
                    "SELECT data FROM hia_observations WHERE key = ? ORDER BY seq", (self.key,)
                ).fetchall()
            finally:
                self._db.execute("COMMIT")
            observations = [Observation.from_dict(json.loads(data)) for (data,) in rows]
            self._cache = (version, observations)
            return version, list(observations)

    def replace(self, observations: Sequence[Observation]) -> None:
        """Replace this key's observations (the latest ``max_size`` of them)."""
        rows = [(self.key, json.dumps(o.as_dict())) for o in observations][-self.max_size :]
        with self._lock, self._guard(), self._write():
            self._db.execute("DELETE FROM hia_observations WHERE key = ?", (self.key,))
            self._db.executemany("INSERT INTO hia_observations (key, data) VALUES (?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- plumbing ----------------------------------------------------------------------------

    def _version(self) -> int:
        row = self._db.execute(
            "SELECT version FROM hia_observation_versions WHERE key = ?", (self.key,)
        ).fetchone()
        return int(row[0]) if row else 0

    def _trim(self) -> None:
        self._db.execute(
            "DELETE FROM hia_observations WHERE key = ? AND seq < (SELECT seq FROM "
            "hia_observations WHERE key = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
            (self.key, self.key, self.max_size - 1),
        )

    @contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction that also bumps this key's version."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._db.execute(
                "INSERT INTO hia_observation_versions (key, version) VALUES (?, 1) "
                "ON CONFLICT(key) DO UPDATE SET version = version + 1",
                (self.key,),
            )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as e:
            msg = (
                f"The SQLite observation store {self.path} failed ({type(e).__name__}: {e}): "
                "check that the file is a database this process can write, on a local disk."
            )
            raise StoreUnavailableError(msg, url=str(self.path)) from e

"""Where a :class:`~hia_chain.scorers.learned.LearnedHeuristic` keeps what it learned, outside
the process: per user and per response model, bounded, safe under concurrent writers.

* :class:`SQLiteObservationStore`: one machine; survives restarts (stdlib ``sqlite3``, WAL).
* :class:`RedisObservationStore`: many processes and hosts learn together (``[redis]`` extra).

Both implement :class:`~hia_chain.scorers.learned.ObservationStore`; its version number lets a
reader skip re-reading the observations when nobody wrote since its last read.
"""

from hia_chain.stores.keys import observation_key as observation_key
from hia_chain.stores.redis_store import RedisObservationStore as RedisObservationStore
from hia_chain.stores.sqlite_store import SQLiteObservationStore as SQLiteObservationStore

__all__ = ["RedisObservationStore", "SQLiteObservationStore", "observation_key"]

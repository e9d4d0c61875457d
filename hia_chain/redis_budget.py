"""A budget pool in Redis, shared by every process and host that names it.

:class:`RedisBudget` is a budget level (:class:`~hia_chain.budget.BaseBudget`) whose state
lives in Redis, so one cap holds across the workers behind a load balancer: pass it as
``shared_budget=`` or as the ``parent`` of per-request budgets, as you would a
:class:`~hia_chain.Budget`. Each operation (check-and-hold, settle, release, renew) is one Lua
script, one atomic step on the server (:mod:`hia_chain._redis_lua`).

An in-flight call is a *lease* with a TTL, renewed while the call runs by a background task of
this process. A worker that dies mid-call (SIGKILL, OOM, a lost host) stops renewing; once its
leases expire the next operation on the pool charges each as a started call at its reserved
bound (the provider may have received it), and the pool goes on. A worker that was only
stalled past the TTL and then settles replaces that bound with the real counts.

Fail closed: when Redis cannot be reached, or lost the pool (a restart without persistence,
a deleted key), every operation raises :class:`~hia_chain.errors.StoreUnavailableError`
naming Redis and the URL, and no call is made without a reservation. Run Redis with
persistence (``appendonly yes``) for a cap that survives a Redis restart: a process that saw
the pool before the data was lost keeps failing rather than starting again from zero.

The client is redis-py's ``redis.asyncio`` (the ``[redis]`` extra), one per event loop that
awaits the budget (sync entry points run each request in a fresh loop); the leases are renewed
by a thread of this process, so a busy event loop does not let them lapse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from hia_chain import _redis_lua
from hia_chain.budget import BaseBudget, Hold, Limits, Price, Role, Usage
from hia_chain.errors import ConfigError, StoreUnavailableError

__all__ = ["RedisBudget", "redact_url"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_KEY_PARTS = ("meta", "charged", "leases", "exp", "held", "reaped", "reaped_at")


class RedisBudget(BaseBudget):
    """A hard cap on calls, tokens and cost, per role, shared through Redis.

    Every process that constructs ``RedisBudget(url, name, ...)`` with the same ``url`` and
    ``name`` draws from one pool; give them the same caps (caps and prices are each process's
    configuration; only the state is in Redis).

    Args:
        url: The Redis server, e.g. ``redis://127.0.0.1:6379/0`` (``rediss://`` for TLS).
        name: The pool's name (e.g. a tenant); its keys are ``hia:budget:{name}:*``.
        calls, tokens, cost, limits, prices, parent: The caps and the chain, exactly as for
            :class:`~hia_chain.budget.Budget` (same names, order and defaults).
        lease_ttl: Seconds an in-flight call's lease lives without renewal (renewed every
            third of it while the call runs): how long a dead worker's calls hold the pool.
        period: Seconds after which the caps start afresh (e.g. ``86400`` for a daily cap);
            periods are aligned to the Unix epoch (a day starts at 00:00 UTC). ``None``: never.
        timeout: Seconds one Redis operation may take before it fails (closed).
        max_connections: Connections this process opens to Redis at most; more concurrent
            operations queue for one.

    Raises:
        ConfigError: a bad URL, name, TTL, period or cap.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        name: str = "default",
        calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        *,
        limits: Mapping[str, Limits] | None = None,
        prices: Mapping[str, Price] | None = None,
        parent: BaseBudget | None = None,
        lease_ttl: float = 30.0,
        period: float | None = None,
        timeout: float = 5.0,
        max_connections: int = 16,
    ) -> None:
        super().__init__(calls, tokens, cost, limits=limits, prices=prices, parent=parent)
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            msg = f"`url` must be a redis://, rediss:// or unix:// URL, got {url!r}."
            raise ConfigError(msg)
        if not name or "{" in name or "}" in name:
            msg = f"`name` must be a non-empty string without braces, got {name!r}."
            raise ConfigError(msg)
        if not (
            isinstance(lease_ttl, int | float) and math.isfinite(lease_ttl) and lease_ttl >= 0.2
        ):
            msg = f"`lease_ttl` must be at least 0.2 seconds, got {lease_ttl!r}."
            raise ConfigError(msg)
        if period is not None and not (
            isinstance(period, int | float) and math.isfinite(period) and period >= 1
        ):
            msg = f"`period` must be at least 1 second (or None), got {period!r}."
            raise ConfigError(msg)
        if not (isinstance(timeout, int | float) and timeout > 0):
            msg = f"`timeout` must be a positive number of seconds, got {timeout!r}."
            raise ConfigError(msg)
        if (
            isinstance(max_connections, bool)
            or not isinstance(max_connections, int)
            or max_connections < 1
        ):
            msg = f"`max_connections` must be an int >= 1, got {max_connections!r}."
            raise ConfigError(msg)
        self.max_connections = max_connections
        self.url = url
        self.name = name
        self.lease_ttl = float(lease_ttl)
        self.period = None if period is None else float(period)
        self.timeout = float(timeout)
        prefix = f"hia:budget:{{{name}}}"
        self._keys = [f"{prefix}:{part}" for part in _KEY_PARTS]
        self._ttl_ms = str(round(self.lease_ttl * 1000))
        self._period_ms = "0" if self.period is None else str(round(self.period * 1000))
        self._lock = threading.Lock()
        self._runner: _Runner | None = None
        self._pool_id: str | None = None

    def __repr__(self) -> str:
        return f"RedisBudget(url={redact_url(self.url)!r}, name={self.name!r}, limits={self._limits!r})"

    # -- level primitives ------------------------------------------------------------------

    async def hold(self, hold: Hold) -> bool:
        lim = self.limits(hold.role)
        args = [hold.role, hold.id, str(hold.tokens), repr(float(hold.cost)), self._ttl_ms]
        args += ["" if v is None else repr(v) for v in (lim.calls, lim.tokens, lim.cost)]
        runner = self._get_runner()
        try:
            return bool(await self._run(runner.hold(hold.id, args)))
        except Exception:
            # The script may have run before its reply was lost: drop the lease (idempotent),
            # or it would expire later and be charged as a call that was never sent.
            with contextlib.suppress(Exception):
                await self._run(runner.drop(hold.id, "unhold", [hold.id]))
            raise

    async def commit(
        self, hold: Hold, spent: Usage, *, charged_tokens: int, charged_cost: float
    ) -> None:
        args = [hold.role, hold.id, str(spent.calls), str(spent.input_tokens)]
        args += [str(spent.output_tokens), repr(float(spent.cost)), str(spent.unreported)]
        args += [str(spent.failed), str(charged_tokens), repr(float(charged_cost))]
        runner = self._get_runner()
        await self._run(runner.drop(hold.id, "commit", args))

    async def unhold(self, hold: Hold) -> None:
        runner = self._get_runner()
        await self._run(runner.drop(hold.id, "unhold", [hold.id]))

    async def headroom(self, role: Role) -> int | None:
        cap = self.limits(role).calls
        if cap is None:
            return None
        state = await self._state(role)
        return cap - int(state[0]) - int(state[8])

    async def spent(self, role: Role) -> Usage:
        s = await self._state(role)
        return Usage(int(s[0]), int(s[1]), int(s[2]), float(s[3]), int(s[4]), int(s[5]))

    # -- extras ------------------------------------------------------------------------------

    async def aheld(self, role: Role = "response") -> int:
        """Calls of ``role`` in flight in the whole pool (live leases, every process)."""
        return int((await self._state(role))[8])

    async def acharged(self, role: Role = "response") -> tuple[int, float]:
        """Tokens and cost of ``role`` counted against the caps so far (bounds included)."""
        s = await self._state(role)
        return int(s[6]), float(s[7])

    def close(self) -> None:
        """Stop this process's client and renewal task (the pool itself stays in Redis).

        Leases still live in this process stop being renewed and expire as a dead worker's.
        """
        with self._lock:
            runner, self._runner = self._runner, None
        if runner is not None and runner.pid == os.getpid():
            runner.close()

    async def aclose(self) -> None:
        """:meth:`close`, also closing this event loop's connections."""
        with self._lock:
            runner = self._runner
        if runner is not None and runner.pid == os.getpid():
            await runner.aclose_current()
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- plumbing ----------------------------------------------------------------------------

    async def _state(self, role: Role) -> list[str]:
        runner = self._get_runner()
        out = await self._run(runner.script("state", [role]))
        return [v.decode() if isinstance(v, bytes) else str(v) for v in out]

    def _get_runner(self) -> _Runner:
        """This process's client loop (a new one after a fork: threads do not survive it)."""
        with self._lock:
            if self._runner is None or self._runner.pid != os.getpid():
                self._runner = _Runner(self)
            return self._runner

    async def _run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Await ``coro``; Redis failures become one typed error."""
        try:
            return await coro
        except Exception as exc:
            raise self._unavailable(exc) from exc

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        url = redact_url(self.url)
        if "HIA_POOL_LOST" in str(exc):
            msg = (
                f"Redis at {url} no longer has budget pool {self.name!r} (Redis restarted "
                "without persistence, or the keys were deleted), so no call was made: the cap "
                "cannot be honoured. Run Redis with `appendonly yes`; restart the workers to "
                "start a new pool."
            )
        else:
            msg = (
                f"Redis at {url} is unavailable for budget pool {self.name!r} "
                f"({type(exc).__name__}: {exc}), so no call was made (the budget fails closed). "
                "Check that redis-server is running and reachable at that URL."
            )
        return StoreUnavailableError(msg, url=url)


class _Runner:
    """This process's Redis clients: one redis.asyncio client per event loop that uses the
    budget (a client belongs to its loop), and one sync client on a thread that renews this
    process's leases. The hot path (hold, settle) runs on the caller's own loop: handing each
    operation to another thread would make the two threads queue for the GIL."""

    def __init__(self, budget: RedisBudget) -> None:
        try:
            import redis
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry as AsyncRetry
            from redis.backoff import ExponentialBackoff
            from redis.retry import Retry
        except ImportError as e:
            msg = "RedisBudget needs redis-py: pip install 'hia-chain[redis]'."
            raise ImportError(msg) from e
        self.pid = os.getpid()
        self.budget = budget
        self.live: set[str] = set()
        self.lock = threading.Lock()
        self._aioredis = aioredis
        self._async_retry: Callable[[], Any] = lambda: AsyncRetry(
            ExponentialBackoff(cap=0.2, base=0.02), 2
        )
        self.by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        # Every script is idempotent, so retrying one after a dropped connection is safe.
        self.sync = redis.Redis.from_url(
            budget.url,
            socket_timeout=budget.timeout,
            socket_connect_timeout=budget.timeout,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2),
        )
        self.renew_script = self.sync.register_script(_redis_lua.RENEW)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    async def _client(self) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        entry = self.by_loop.get(loop)
        if entry is None:
            budget = self.budget
            # A bounded pool where operations queue for a connection (no wait limit: each
            # holder is bounded by the socket timeouts, so the queue always moves).
            pool = self._aioredis.BlockingConnectionPool.from_url(
                budget.url,
                max_connections=budget.max_connections,
                timeout=None,
                socket_timeout=budget.timeout,
                socket_connect_timeout=budget.timeout,
                retry=self._async_retry(),
            )
            client = self._aioredis.Redis(connection_pool=pool)
            entry = {
                "client": client,
                "pool": pool,
                "init": client.register_script(_redis_lua.INIT),
            }
            for name in ("hold", "commit", "unhold", "state"):
                entry[name] = client.register_script(getattr(_redis_lua, name.upper()))
            # Close the connections while their loop still runs: asyncio.run and anyio.run
            # close every async generator started in the loop before closing it.
            entry["closer"] = _closer(client, pool)
            await entry["closer"].__anext__()
            self.by_loop[loop] = entry
        return entry

    async def pool_id(self, entry: dict[str, Any]) -> str:
        """The pool's id, created on first use (remembered: a change means the pool was lost)."""
        if self.budget._pool_id is None:
            got = await entry["init"](keys=self.budget._keys[:1], args=[uuid.uuid4().hex])
            self.budget._pool_id = got.decode() if isinstance(got, bytes) else str(got)
        return self.budget._pool_id

    async def script(self, name: str, args: list[str]) -> Any:
        entry = await self._client()
        head = [await self.pool_id(entry), self.budget._period_ms]
        return await entry[name](keys=self.budget._keys, args=head + args)

    async def hold(self, lease: str, args: list[str]) -> int:
        held = int(await self.script("hold", args))
        if held:
            with self.lock:
                self.live.add(lease)
                if self.thread is None:
                    self.thread = threading.Thread(
                        target=self._renew_forever, name="hia-redis-budget-renew", daemon=True
                    )
                    self.thread.start()
        return held

    async def drop(self, lease: str, name: str, args: list[str]) -> Any:
        with self.lock:
            self.live.discard(lease)  # settled or not, this process stops renewing it
        return await self.script(name, args)

    def _renew_forever(self) -> None:
        budget = self.budget
        while not self.stop.wait(budget.lease_ttl / 3):
            with self.lock:
                ids = list(self.live)
            for start in range(0, len(ids), 1000):
                head = [budget._pool_id or "", budget._period_ms, budget._ttl_ms]
                try:
                    self.renew_script(keys=budget._keys, args=head + ids[start : start + 1000])
                except Exception as exc:  # Redis down: the calls' own settle reports it
                    logger.warning("Renewing %d RedisBudget leases failed: %s", len(ids), exc)
                    break

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
        self.sync.close()

    async def aclose_current(self) -> None:
        entry = self.by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry["closer"].aclose()


async def _closer(client: Any, pool: Any) -> AsyncIterator[None]:
    """Yields once; closing it (``aclose``, or the loop's shutdown) closes the connections."""
    try:
        yield
    finally:
        await client.aclose()
        await pool.aclose()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for errors and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))

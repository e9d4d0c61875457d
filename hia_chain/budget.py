"""Hard budgets: reserve before a call, settle after, never overspend.

One unit of the main budget is one call to the wrapped response model (the HIA paper's
"response query"). Token and cost caps are optional. Optimizer, judge and draft calls are
counted per role with their own optional caps.

A budget may have a ``parent``: a reservation must fit in the child *and* every ancestor,
which is how a per-request cap sits inside a pool shared by many requests (or many
processes: :class:`BaseBudget` is the seam a Redis-backed pool plugs into). The chain logic
(reserve at every level or at none, settle every level, undo on partial failure) lives once,
in :class:`BaseBudget`; each level only implements five small async primitives: ``hold``,
``commit``, ``unhold``, ``headroom`` and ``spent``. :class:`Budget` is the in-process level
(a plain lock, held only for arithmetic, so one object can be shared by concurrent async
requests, by ``batch``'s worker threads, or by both).

How a call is charged (the one call path, :mod:`hia_chain.calls`, picks the outcome):

* the provider reported usage → exactly that (``asettle(r, input, output)``);
* the request never left the process (cancelled or timed out before it was written) →
  given back whole (``arelease``);
* the provider answered with an error status → one call and its input bound, no output
  (``asettle_failed``);
* unknown (a timeout, a cancellation or an unreadable reply after the request was written) →
  one call at its whole reserved bound (``asettle(r)`` with no counts).

Token bounds are reserved up front (input bound + ``max_tokens``), so token and cost caps hold
even while calls are in flight; each level prices a call with its own prices.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import os
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import anyio

from hia_chain.errors import BudgetExceededError, ConfigError

__all__ = [
    "ROLES",
    "BaseBudget",
    "Budget",
    "Hold",
    "Limits",
    "Price",
    "Reservation",
    "Role",
    "Usage",
    "completion_usage",
    "message_usage",
]

Role = Literal["response", "optimizer", "judge", "draft"]
ROLES: tuple[Role, ...] = ("response", "optimizer", "judge", "draft")

_T = TypeVar("_T")


@dataclass(frozen=True)
class Limits:
    """Caps for one role; ``None`` means uncapped."""

    calls: int | None = None
    tokens: int | None = None
    cost: float | None = None

    def __post_init__(self) -> None:
        for name in ("calls", "tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                msg = f"Budget `{name}` must be an int or None, got {value!r}."
                raise ConfigError(msg)
            if value is not None and value < 0:
                msg = f"Budget `{name}` must be >= 0, got {value}."
                raise ConfigError(msg)
        if self.cost is not None and not (
            isinstance(self.cost, int | float) and self.cost >= 0 and math.isfinite(self.cost)
        ):
            msg = f"Budget `cost` must be a finite number >= 0, got {self.cost!r}."
            raise ConfigError(msg)


@dataclass(frozen=True)
class Price:
    """Price of one role's tokens, in your currency per million tokens."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        return (
            input_tokens * self.input_per_million + output_tokens * self.output_per_million
        ) / 1e6


@dataclass
class Usage:
    """What one role has spent (settled) so far."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unreported: int = 0
    """Calls whose provider reported no token usage (counted as calls, never as 0 tokens)."""
    failed: int = 0
    """Calls the provider answered with an error status (also ``unreported``)."""

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.unreported += other.unreported
        self.failed += other.failed

    def as_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "unreported_calls": self.unreported,
            "failed_calls": self.failed,
        }


@dataclass(frozen=True)
class Hold:
    """One level's part of a reservation: what that level holds for one in-flight call.

    ``id`` is the reservation's id, the same at every level (a Redis level keys its lease by
    it); ``cost`` is priced with that level's own prices.
    """

    id: str
    role: Role
    tokens: int
    cost: float


@dataclass
class Reservation:
    """A call held in a budget and every ancestor until settled or released."""

    role: Role
    tokens: int
    """Bound on the call's input plus output tokens."""
    output_tokens: int | None
    """The output part of ``tokens`` (``None``: not split, every token priced dearer)."""
    levels: tuple[BaseBudget, ...]
    holds: tuple[Hold, ...]
    """One per level, in the same order (the budget reserved from first, the root last)."""
    id: str = field(default_factory=lambda: _new_id())
    done: bool = False

    @property
    def input_tokens(self) -> int:
        """The input part of the bound (the whole bound when it was not split)."""
        return self.tokens - (self.output_tokens or 0)


class BaseBudget(ABC):
    """A hard cap on calls, tokens and cost, per role: one level of a budget chain.

    Subclasses implement the level primitives (``hold``, ``commit``, ``unhold``,
    ``headroom``, ``spent``); everything else (the chain across ``parent`` levels, bounds,
    prices, the settlement rules) is here, so every level behaves the same.

    Args:
        calls: Most response-model calls (the HIA budget unit).
        tokens: Most response-model tokens, input plus output.
        cost: Most response-model cost, computed with ``prices``.
        limits: Caps for the other roles, e.g. ``{"judge": Limits(calls=20)}``.
        prices: Per-role token prices, needed for any cost cap on that role.
        parent: A budget that every reservation must also fit in (a shared pool).
    """

    def __init__(
        self,
        calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        *,
        limits: Mapping[str, Limits] | None = None,
        prices: Mapping[str, Price] | None = None,
        parent: BaseBudget | None = None,
    ) -> None:
        self._limits: dict[str, Limits] = {"response": Limits(calls, tokens, cost)}
        for role, lim in (limits or {}).items():
            _check_role(role)
            if role == "response":
                msg = "Set response caps with `calls`/`tokens`/`cost`, not `limits['response']`."
                raise ConfigError(msg)
            if not isinstance(lim, Limits):
                msg = f"`limits[{role!r}]` must be a Limits(...), got {lim!r}."
                raise ConfigError(msg)
            self._limits[role] = lim
        self._prices: dict[str, Price] = dict(prices or {})
        for role, price in self._prices.items():
            _check_role(role)
            if not isinstance(price, Price):
                msg = f"`prices[{role!r}]` must be a Price(...), got {price!r}."
                raise ConfigError(msg)
        if parent is not None and not isinstance(parent, BaseBudget):
            msg = f"`parent` must be a Budget (or RedisBudget), got {type(parent).__name__}."
            raise ConfigError(msg)
        self.parent = parent
        for role, lim in self._limits.items():
            if lim.cost is not None and self.price(role) is None:  # type: ignore[arg-type]
                msg = (
                    f"A cost cap on role {role!r} needs `prices[{role!r}]` (here or on a "
                    "parent budget) to compute cost."
                )
                raise ConfigError(msg)

    # -- the level interface: what each kind of budget implements --------------------------

    @abstractmethod
    async def hold(self, hold: Hold) -> bool:
        """Atomically check this level's caps and, if one more call fits, hold it.

        Fits when, for ``hold.role``: settled calls + held calls + 1 <= calls cap, charged
        tokens + held tokens + ``hold.tokens`` <= tokens cap, and charged cost + held cost +
        ``hold.cost`` <= cost cap (each only where the cap is set). Returns ``False`` and
        holds nothing when it does not fit. Raising means nothing is held at this level.
        """

    @abstractmethod
    async def commit(
        self, hold: Hold, spent: Usage, *, charged_tokens: int, charged_cost: float
    ) -> None:
        """Atomically drop ``hold`` and record a made call, in one step.

        ``spent`` is what the usage report shows (one call; tokens and cost as the provider
        reported them, priced with this level's prices); ``charged_tokens``/``charged_cost``
        are what this call counts against the token and cost caps from now on (at least
        ``spent``'s; more when the provider reported nothing). Must record the call even if
        the hold is gone (e.g. an expired lease): the call was made.
        """

    @abstractmethod
    async def unhold(self, hold: Hold) -> None:
        """Drop ``hold`` without charging anything (the call never left the process)."""

    @abstractmethod
    async def headroom(self, role: Role) -> int | None:
        """Calls of ``role`` this level alone could still hold now (``None``: uncapped)."""

    @abstractmethod
    async def spent(self, role: Role) -> Usage:
        """Settled usage of ``role`` at this level (a copy)."""

    # -- configuration ----------------------------------------------------------------------

    def limits(self, role: Role = "response") -> Limits:
        return self._limits.get(role, Limits())

    def price(self, role: Role) -> Price | None:
        if role in self._prices:
            return self._prices[role]
        return self.parent.price(role) if self.parent else None

    def chain(self) -> tuple[BaseBudget, ...]:
        """This budget and its ancestors, nearest first."""
        out: list[BaseBudget] = []
        node: BaseBudget | None = self
        while node is not None:
            out.append(node)
            node = node.parent
        return tuple(out)

    def needs_token_bound(self, role: Role) -> bool:
        """Whether a reservation for ``role`` must carry an upper bound on tokens."""
        lim = self.limits(role)
        if lim.tokens is not None or lim.cost is not None:
            return True
        return self.parent.needs_token_bound(role) if self.parent else False

    # -- the chain (async; shielded so a cancelled caller never leaves a level half-done) ---

    async def areserve(
        self, role: Role, *, tokens: int | None = None, output_tokens: int | None = None
    ) -> Reservation | None:
        """Hold one call of ``role`` here and in every ancestor, or nowhere.

        Args:
            role: Which role's caps the call counts against.
            tokens: Bound on the call's input plus output tokens.
            output_tokens: The output part of ``tokens`` (e.g. ``max_tokens``); lets cost caps
                price each part at its own rate and an error status be charged input only.

        Returns:
            The reservation, or ``None`` when any level would be overspent (nothing is held).

        Raises:
            ConfigError: a token or cost cap applies but ``tokens`` was not given.
        """
        with anyio.CancelScope(shield=True):
            reservation = await self._reserve(role, tokens, output_tokens)
        return reservation

    async def asettle(
        self,
        reservation: Reservation,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Usage:
        """Record a made call: at the reported counts, or (``None``) at its whole bound.

        Returns this budget's part of the usage (one call, priced with its prices).
        """
        with anyio.CancelScope(shield=True):
            usage = await self._settle(reservation, input_tokens, output_tokens, failed=False)
        return usage

    async def asettle_failed(
        self,
        reservation: Reservation,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Usage:
        """Record a call the provider answered with an error status.

        It counts as a call; the caps are charged what the provider reported, else the input
        bound (the provider read the request) but no output (it wrote none).
        """
        with anyio.CancelScope(shield=True):
            usage = await self._settle(reservation, input_tokens, output_tokens, failed=True)
        return usage

    async def arelease(self, reservation: Reservation) -> None:
        """Give a reservation back whole: only for a call that never left the process."""
        with anyio.CancelScope(shield=True):
            await self._release(reservation)

    async def aremaining_calls(self, role: Role = "response") -> int | None:
        """Calls still available (after in-flight reservations) here and in every ancestor."""
        values = [v for v in [await b.headroom(role) for b in self.chain()] if v is not None]
        return max(0, min(values)) if values else None

    async def ausage(self, role: Role = "response") -> Usage:
        """Settled usage of ``role`` at this level (a copy)."""
        return await self.spent(role)

    @asynccontextmanager
    async def spend(
        self, role: Role, *, tokens: int | None = None, output_tokens: int | None = None
    ) -> AsyncIterator[Reservation]:
        """Reserve one call for the duration of the block, which makes the call.

        Settle inside the block with :meth:`asettle`; a block left any other way (an error, a
        cancellation) counts the call at its reserved bound: the provider may have received it.
        (:mod:`hia_chain.calls` does better where it can tell whether the request was sent.)

        Raises:
            BudgetExceededError: the call does not fit.
        """
        reservation = await self.areserve(role, tokens=tokens, output_tokens=output_tokens)
        if reservation is None:
            msg = f"The {role!r} budget cannot pay for another call."
            raise BudgetExceededError(msg)
        try:
            yield reservation
        finally:
            await self.asettle(reservation)

    async def _reserve(
        self, role: Role, tokens: int | None, output_tokens: int | None
    ) -> Reservation | None:
        _check_role(role)
        if tokens is None and self.needs_token_bound(role):
            msg = (
                f"A token or cost cap applies to role {role!r}, so each call needs a bound on "
                "its tokens: set `max_tokens` on the model (or remove the token/cost cap)."
            )
            raise ConfigError(msg)
        bound = tokens or 0
        if output_tokens is not None and not 0 <= output_tokens <= bound:
            msg = f"`output_tokens` ({output_tokens}) must lie within `tokens` ({bound})."
            raise ConfigError(msg)
        levels = self.chain()
        rid = _new_id()
        holds = tuple(
            Hold(rid, role, bound, _bound_cost(b.price(role), bound, output_tokens)) for b in levels
        )
        taken: list[int] = []
        try:
            for i, (b, h) in enumerate(zip(levels, holds, strict=True)):
                if not await b.hold(h):
                    break
                taken.append(i)
        finally:
            if len(taken) < len(levels):  # refused or raised part-way: undo, nearest last
                for i in reversed(taken):
                    await levels[i].unhold(holds[i])
        if len(taken) < len(levels):
            return None
        return Reservation(role, bound, output_tokens, levels, holds, id=rid)

    async def _settle(
        self,
        reservation: Reservation,
        input_tokens: int | None,
        output_tokens: int | None,
        *,
        failed: bool,
    ) -> Usage:
        if reservation.done:
            return Usage()
        reservation.done = True
        role = reservation.role
        reported = input_tokens is not None and output_tokens is not None
        mine = Usage()
        errors: list[BaseException] = []
        for b, h in zip(reservation.levels, reservation.holds, strict=True):
            price = b.price(role)
            if reported:
                cost = price.cost(input_tokens, output_tokens) if price else 0.0  # type: ignore[arg-type]
                usage = Usage(1, input_tokens, output_tokens, cost, failed=int(failed))  # type: ignore[arg-type]
                tokens_charged, cost_charged = usage.total_tokens, cost
            elif failed:
                usage = Usage(1, unreported=1, failed=1)
                tokens_charged = reservation.input_tokens
                cost_charged = _bound_cost(price, tokens_charged, 0)
            else:  # unknown outcome: the whole bound
                usage = Usage(1, unreported=1)
                tokens_charged, cost_charged = h.tokens, h.cost
            try:
                await b.commit(h, usage, charged_tokens=tokens_charged, charged_cost=cost_charged)
            except Exception as exc:  # keep settling the other levels, then report it
                errors.append(exc)
            if b is self:
                mine = usage
        if errors:
            raise errors[0]
        return mine

    async def _release(self, reservation: Reservation) -> None:
        if reservation.done:
            return
        reservation.done = True
        errors: list[BaseException] = []
        for b, h in zip(reservation.levels, reservation.holds, strict=True):
            try:
                await b.unhold(h)
            except Exception as exc:
                errors.append(exc)
        if errors:
            raise errors[0]


class Budget(BaseBudget):
    """An in-process, thread-safe budget level; see :class:`BaseBudget` for the arguments.

    Besides the async API it has sync helpers (``try_reserve``, ``settle``, ``release``,
    ``usage``, ``remaining_calls``) for sync code, usable while every level of its chain is
    an in-process ``Budget``.
    """

    def __init__(
        self,
        calls: int | None = None,
        tokens: int | None = None,
        cost: float | None = None,
        *,
        limits: Mapping[str, Limits] | None = None,
        prices: Mapping[str, Price] | None = None,
        parent: BaseBudget | None = None,
    ) -> None:
        super().__init__(calls, tokens, cost, limits=limits, prices=prices, parent=parent)
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {r: _Held() for r in ROLES}
        self._spent: dict[str, Usage] = {r: Usage() for r in ROLES}
        self._charged: dict[str, _Held] = {r: _Held() for r in ROLES}

    # -- level primitives (never suspend: the lock is held only for arithmetic) -------------

    async def hold(self, hold: Hold) -> bool:
        return self._hold_now(hold)

    async def commit(
        self, hold: Hold, spent: Usage, *, charged_tokens: int, charged_cost: float
    ) -> None:
        with self._lock:
            self._drop(hold)
            self._spent[hold.role].add(spent)
            charged = self._charged[hold.role]
            charged.calls += spent.calls
            charged.tokens += charged_tokens
            charged.cost += charged_cost

    async def unhold(self, hold: Hold) -> None:
        with self._lock:
            self._drop(hold)

    async def headroom(self, role: Role) -> int | None:
        return self._headroom_now(role)

    async def spent(self, role: Role) -> Usage:
        return self.usage(role)

    def _hold_now(self, hold: Hold) -> bool:
        lim = self.limits(hold.role)
        with self._lock:
            held, charged = self._held[hold.role], self._charged[hold.role]
            if lim.calls is not None and charged.calls + held.calls + 1 > lim.calls:
                return False
            if lim.tokens is not None and charged.tokens + held.tokens + hold.tokens > lim.tokens:
                return False
            if lim.cost is not None and charged.cost + held.cost + hold.cost > lim.cost + 1e-12:
                return False
            held.calls += 1
            held.tokens += hold.tokens
            held.cost += hold.cost
            return True

    def _drop(self, hold: Hold) -> None:
        """Drop a hold; the caller holds ``self._lock``."""
        held = self._held[hold.role]
        held.calls -= 1
        held.tokens -= hold.tokens
        held.cost -= hold.cost

    def _headroom_now(self, role: Role) -> int | None:
        cap = self.limits(role).calls
        if cap is None:
            return None
        with self._lock:
            return cap - self._charged[role].calls - self._held[role].calls

    # -- sync helpers -----------------------------------------------------------------------

    def usage(self, role: Role = "response") -> Usage:
        """Settled usage of ``role`` (a copy)."""
        with self._lock:
            return dataclasses.replace(self._spent[role])

    def held(self, role: Role = "response") -> int:
        """Calls of ``role`` reserved here and not yet settled or released."""
        with self._lock:
            return self._held[role].calls

    def remaining_calls(self, role: Role = "response") -> int | None:
        """Sync :meth:`aremaining_calls` (every level in-process)."""
        return _run_now(self.aremaining_calls(role), self)

    def try_reserve(
        self, role: Role, *, tokens: int | None = None, output_tokens: int | None = None
    ) -> Reservation | None:
        """Sync :meth:`areserve` (every level in-process)."""
        return _run_now(self._reserve(role, tokens, output_tokens), self)

    def settle(
        self,
        reservation: Reservation,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Usage:
        """Sync :meth:`asettle` (every level in-process)."""
        return _run_now(self._settle(reservation, input_tokens, output_tokens, failed=False), self)

    def release(self, reservation: Reservation) -> None:
        """Sync :meth:`arelease` (every level in-process)."""
        _run_now(self._release(reservation), self)


@dataclass
class _Held:
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0


_PROCESS = uuid.uuid4().hex[:16]
_COUNTER = itertools.count()


def _new_process() -> None:
    global _PROCESS
    _PROCESS = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_process)


def _new_id() -> str:
    """A reservation id unique across processes and hosts (a random process prefix and a
    counter: cheaper than a uuid4 per call, which reads the OS entropy pool)."""
    return f"{_PROCESS}-{next(_COUNTER)}"


def _run_now(coro: Coroutine[Any, Any, _T], budget: BaseBudget) -> _T:
    """Run a chain operation whose levels never suspend (all in-process) to completion."""
    if not all(isinstance(b, Budget) for b in budget.chain()):
        coro.close()
        msg = (
            "This budget has a level that is not in-process (e.g. a RedisBudget): use the "
            "async methods (`areserve`, `asettle`, `arelease`, `aremaining_calls`)."
        )
        raise ConfigError(msg)
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    msg = "An in-process budget level suspended; this is a bug in hia_chain."
    raise RuntimeError(msg)


def message_usage(message: object) -> tuple[int | None, int | None]:
    """Input and output tokens from a LangChain message's ``usage_metadata``, if reported.

    ``None`` means unreported, never zero: the settle rules then charge the bound.
    """
    usage = getattr(message, "usage_metadata", None)
    if not usage:
        return None, None
    return usage.get("input_tokens"), usage.get("output_tokens")


def completion_usage(completion: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """Input and output tokens from an OpenAI-style chat completion (or stream chunk)'s
    ``usage``, if reported; :func:`message_usage` for the wire format."""
    usage = completion.get("usage") or {}
    return usage.get("prompt_tokens"), usage.get("completion_tokens")


def _bound_cost(price: Price | None, tokens: int, output_tokens: int | None) -> float:
    """Worst-case cost of a bound: each part at its own rate, an unsplit bound at the dearer."""
    if price is None:
        return 0.0
    if output_tokens is None:
        return tokens * max(price.input_per_million, price.output_per_million) / 1e6
    return price.cost(tokens - output_tokens, output_tokens)


def _check_role(role: str) -> None:
    if role not in ROLES:
        msg = f"Unknown budget role {role!r}; roles are {', '.join(ROLES)}."
        raise ConfigError(msg)

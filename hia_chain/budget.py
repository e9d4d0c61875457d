"""Hard budgets: reserve before a call, settle after, never overspend.

One unit of the main budget is one call to the wrapped response model (the HIA paper's
"response query"). Token and cost caps are optional. Optimizer, judge and draft calls are
counted per role with their own optional caps.

A :class:`Budget` is thread-safe (a plain lock, held only for arithmetic), so one object can
be shared by concurrent async requests, by ``batch``'s worker threads, or by both. A budget
may have a ``parent``: a reservation must fit in the child *and* every ancestor, which is how
a per-request cap sits inside a pool shared by many requests. Token caps reserve an upper
bound (prompt characters + overhead + ``max_tokens``) and settle to the real usage, so the
cap holds even while calls are in flight. Each level prices a call with its own prices.

A call that was started counts, whatever happens to it: a call cancelled or failed in flight
may still have reached (and be billed by) the provider, so it is settled at its reserved bound,
never given back.

The public methods (``try_reserve``, ``settle``, ``release``, ``usage``) are the whole
interface; a Redis-backed budget shared across processes implements the same four.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

from hia_chain.errors import BudgetExceededError, ConfigError

__all__ = ["ROLES", "Budget", "Limits", "Price", "Reservation", "Role", "Usage"]

Role = Literal["response", "optimizer", "judge", "draft"]
ROLES: tuple[Role, ...] = ("response", "optimizer", "judge", "draft")


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
        if self.cost is not None and not (self.cost >= 0 and math.isfinite(self.cost)):
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

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def add(self, other: Usage) -> None:
        self.calls += other.calls
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cost += other.cost
        self.unreported += other.unreported

    def as_dict(self) -> dict[str, float | int]:
        return {
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "total_tokens": self.total_tokens,
            "cost": self.cost,
            "unreported_calls": self.unreported,
        }


@dataclass
class _Held:
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0


@dataclass
class Reservation:
    """A slot held in a budget (and its ancestors) until settled or released."""

    role: Role
    tokens: int
    costs: tuple[float, ...]
    """Worst-case cost at each level of ``budgets``, each with that level's prices."""
    budgets: tuple[Budget, ...]
    done: bool = field(default=False)


class Budget:
    """A thread-safe hard cap on calls, tokens and cost, per role.

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
        parent: Budget | None = None,
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
        for role in self._prices:
            _check_role(role)
        self.parent = parent
        for role, lim in self._limits.items():
            if lim.cost is not None and self.price(role) is None:  # type: ignore[arg-type]
                msg = (
                    f"A cost cap on role {role!r} needs `prices[{role!r}]` (here or on a "
                    "parent budget) to compute cost."
                )
                raise ConfigError(msg)
        self._lock = threading.Lock()
        self._held: dict[str, _Held] = {r: _Held() for r in ROLES}
        self._spent: dict[str, Usage] = {r: Usage() for r in ROLES}
        self._unreported_charge: dict[str, _Held] = {r: _Held() for r in ROLES}

    # -- queries ----------------------------------------------------------------------------

    def limits(self, role: Role = "response") -> Limits:
        return self._limits.get(role, Limits())

    def price(self, role: Role) -> Price | None:
        if role in self._prices:
            return self._prices[role]
        return self.parent.price(role) if self.parent else None

    def usage(self, role: Role = "response") -> Usage:
        """Settled usage of ``role`` (a copy)."""
        with self._lock:
            return dataclasses.replace(self._spent[role])

    def remaining_calls(self, role: Role = "response") -> int | None:
        """Calls still available (after in-flight reservations) here and in every ancestor."""
        with self._lock:
            cap = self.limits(role).calls
            mine = None if cap is None else cap - self._spent[role].calls - self._held[role].calls
        up = self.parent.remaining_calls(role) if self.parent else None
        values = [v for v in (mine, up) if v is not None]
        return max(0, min(values)) if values else None

    def needs_token_bound(self, role: Role) -> bool:
        """Whether a reservation for ``role`` must carry an upper bound on tokens."""
        lim = self.limits(role)
        if lim.tokens is not None or lim.cost is not None:
            return True
        return self.parent.needs_token_bound(role) if self.parent else False

    # -- reservations -----------------------------------------------------------------------

    def try_reserve(self, role: Role, *, tokens: int | None = None) -> Reservation | None:
        """Hold one call of ``role`` (and ``tokens`` upper bound) here and in every ancestor.

        Returns ``None`` when any level would be overspent; nothing is held then.

        Raises:
            ConfigError: a token or cost cap applies but ``tokens`` was not given.
        """
        _check_role(role)
        chain: list[Budget] = []
        node: Budget | None = self
        while node is not None:
            chain.append(node)
            node = node.parent
        if tokens is None and self.needs_token_bound(role):
            msg = (
                f"A token or cost cap applies to role {role!r}, so each call needs a bound on "
                "its tokens: set `max_tokens` on the model (or remove the token/cost cap)."
            )
            raise ConfigError(msg)
        bound = tokens or 0
        costs = tuple(_upper_cost(b.price(role), bound) for b in chain)
        for i, b in enumerate(chain):
            if not b._hold(role, bound, costs[i]):
                for t, cost in zip(chain[:i], costs, strict=False):
                    with t._lock:
                        t._unhold(role, bound, cost)
                return None
        return Reservation(role=role, tokens=bound, costs=costs, budgets=tuple(chain))

    def _hold(self, role: str, tokens: int, cost: float) -> bool:
        lim = self.limits(role)  # type: ignore[arg-type]
        with self._lock:
            spent, held = self._spent[role], self._held[role]
            extra = self._unreported_charge[role]
            if lim.calls is not None and spent.calls + held.calls + 1 > lim.calls:
                return False
            used_tokens = spent.total_tokens + extra.tokens + held.tokens
            if lim.tokens is not None and used_tokens + tokens > lim.tokens:
                return False
            used_cost = spent.cost + extra.cost + held.cost
            if lim.cost is not None and used_cost + cost > lim.cost + 1e-12:
                return False
            held.calls += 1
            held.tokens += tokens
            held.cost += cost
            return True

    def _unhold(self, role: str, tokens: int, cost: float) -> None:
        """Drop a hold; the caller holds ``self._lock``."""
        held = self._held[role]
        held.calls -= 1
        held.tokens -= tokens
        held.cost -= cost

    def settle(
        self,
        reservation: Reservation,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
    ) -> Usage:
        """Turn a reservation into spent usage with the real token counts.

        Token counts of ``None`` mean the provider reported none: the call is counted as
        ``unreported`` with no tokens (never made-up counts), while token and cost caps are
        charged the reserved bound so they still hold.
        """
        if reservation.done:
            return Usage()
        reservation.done = True
        role = reservation.role
        reported = input_tokens is not None and output_tokens is not None
        mine = Usage()
        for b, bound_cost in zip(reservation.budgets, reservation.costs, strict=True):
            if reported:
                price = b.price(role)
                cost = price.cost(input_tokens, output_tokens) if price else 0.0  # type: ignore[arg-type]
                usage = Usage(1, input_tokens, output_tokens, cost)  # type: ignore[arg-type]
            else:
                usage = Usage(1, 0, 0, 0.0, unreported=1)
            with b._lock:  # one step: no reservation can slip in between release and spend
                b._unhold(role, reservation.tokens, bound_cost)
                b._spent[role].add(usage)
                if not reported:
                    b._unreported_charge[role].tokens += reservation.tokens
                    b._unreported_charge[role].cost += bound_cost
            if b is self:
                mine = usage
        return mine

    def settle_message(self, reservation: Reservation, message: object) -> Usage:
        """Settle with the ``usage_metadata`` of a LangChain message, if it has any."""
        usage = getattr(message, "usage_metadata", None)
        if not usage:
            return self.settle(reservation)
        return self.settle(reservation, usage["input_tokens"], usage["output_tokens"])

    def release(self, reservation: Reservation) -> None:
        """Give a reservation back unspent: only for a call that was never started."""
        if reservation.done:
            return
        reservation.done = True
        for b, cost in zip(reservation.budgets, reservation.costs, strict=True):
            with b._lock:
                b._unhold(reservation.role, reservation.tokens, cost)

    @asynccontextmanager
    async def spend(self, role: Role, *, tokens: int | None = None) -> AsyncIterator[Reservation]:
        """Reserve one call for the duration of the block, which makes the call.

        Settle inside the block with :meth:`settle` or :meth:`settle_message`. A block left
        any other way (an error, a cancellation) counts the call as made at its reserved bound:
        the provider may have received it.

        Raises:
            BudgetExceededError: the call does not fit.
        """
        reservation = self.try_reserve(role, tokens=tokens)
        if reservation is None:
            msg = f"The {role!r} budget cannot pay for another call."
            raise BudgetExceededError(msg)
        try:
            yield reservation
        finally:
            self.settle(reservation)


def _upper_cost(price: Price | None, tokens: int) -> float:
    """Worst-case cost of a reservation: every token priced at the dearer rate."""
    if price is None:
        return 0.0
    return tokens * max(price.input_per_million, price.output_per_million) / 1e6


def _check_role(role: str) -> None:
    if role not in ROLES:
        msg = f"Unknown budget role {role!r}; roles are {', '.join(ROLES)}."
        raise ConfigError(msg)

"""``/metrics`` in Prometheus' text format: requests, upstream calls, latency, budget left.

Counters are per worker process (a scrape reaches one worker; sum over workers); the
budget left is read from the pools themselves, so with ``--redis-url`` every worker reports
the same shared figure.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from collections.abc import Mapping

__all__ = ["Metrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters of one worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.calls: Counter[str] = Counter()
        self._buckets = [0] * (len(_BUCKETS) + 1)
        self._sum = 0.0
        self._count = 0

    def request(self, kind: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(kind, status)] += 1
            self._buckets[bisect.bisect_left(_BUCKETS, seconds)] += 1
            self._sum += seconds
            self._count += 1

    def upstream_calls(self, key: str, calls: int) -> None:
        with self._lock:
            self.calls[key] += calls

    def render(self, calls_left: Mapping[str, int | None]) -> str:
        with self._lock:
            lines = [
                "# HELP hia_requests_total Chat-completion requests answered, by kind and status.",
                "# TYPE hia_requests_total counter",
            ]
            for (kind, status), n in sorted(self.requests.items()):
                lines.append(f'hia_requests_total{{kind="{kind}",status="{status}"}} {n}')
            lines += [
                "# HELP hia_upstream_calls_total Response-model calls charged, by key name.",
                "# TYPE hia_upstream_calls_total counter",
            ]
            for key, n in sorted(self.calls.items()):
                lines.append(f'hia_upstream_calls_total{{key="{key}"}} {n}')
            lines += [
                "# HELP hia_request_seconds Time to answer a chat-completion request.",
                "# TYPE hia_request_seconds histogram",
            ]
            running = 0
            for bound, n in zip(_BUCKETS, self._buckets, strict=False):
                running += n
                lines.append(f'hia_request_seconds_bucket{{le="{bound}"}} {running}')
            lines.append(f'hia_request_seconds_bucket{{le="+Inf"}} {self._count}')
            lines.append(f"hia_request_seconds_sum {self._sum:.6f}")
            lines.append(f"hia_request_seconds_count {self._count}")
        lines += [
            "# HELP hia_budget_calls_left Response calls each key may still start this period.",
            "# TYPE hia_budget_calls_left gauge",
        ]
        for key, left in sorted(calls_left.items()):
            if left is not None:
                lines.append(f'hia_budget_calls_left{{key="{key}"}} {left}')
        return "\n".join(lines) + "\n"

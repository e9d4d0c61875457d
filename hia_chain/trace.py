"""How much of the search's trace an answer carries in ``response_metadata["hia"]``.

An agent's checkpointer stores every message of a thread, trace included, so a full trace
(every candidate's prompt and answer: tens of KB at budget 8) is written again at every
step. The mode picks what the answer keeps; the whole trace is still reported to callbacks
(the ``hia_done`` custom event) and returned by ``AlignedChatModel.arun_search``.

* ``full``: everything, every candidate with its prompt, scores and answer.
* ``summary``: the settings, goal, scores, usage and flags; candidates only counted.
* ``none``: only the flags an agent acts on: calls, ``budget_exhausted``, ``stopped`` (and
  its ``stop_detail``) and the step policy.
"""

from __future__ import annotations

from typing import Any, Literal

from hia_chain.errors import ConfigError

__all__ = ["TRACE_MODES", "TraceMode", "shape_trace"]

TraceMode = Literal["full", "summary", "none"]
TRACE_MODES: tuple[TraceMode, ...] = ("full", "summary", "none")
_FLAGS = ("calls", "budget", "budget_exhausted", "stopped", "stop_detail", "agent")


def shape_trace(trace: dict[str, Any], mode: str) -> dict[str, Any]:
    """``trace`` cut down to ``mode``.

    Raises:
        ConfigError: an unknown mode.
    """
    if mode == "full":
        return trace
    if mode == "summary":
        candidates = trace.get("candidates") or []
        out = {k: v for k, v in trace.items() if k != "candidates"}
        out["proposed"] = len(candidates)
        out["sent"] = sum(1 for c in candidates if c.get("sent"))
        return out
    if mode == "none":
        return {k: trace[k] for k in _FLAGS if k in trace}
    msg = f"`trace` must be one of {', '.join(TRACE_MODES)}, got {mode!r}."
    raise ConfigError(msg)

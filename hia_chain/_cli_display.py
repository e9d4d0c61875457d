"""What ``hia-chain align`` shows a person: live progress, then the candidates and the answer."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from rich.console import Console
from rich.panel import Panel
from rich.status import Status
from rich.table import Table

__all__ = ["Progress", "calls_by_role", "render_result"]

_console = Console(stderr=True)


class _ProgressHandler(BaseCallbackHandler):
    """Turns the search's custom events into status-line updates."""

    def __init__(self, status: Status | None) -> None:
        self.status = status

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.status is None:
            return
        if name == "hia_proposed":
            self.status.update(
                f"round {data['round']}: {len(data['candidates'])} candidates proposed, scoring…"
            )
        elif name == "hia_round":
            self.status.update(
                f"round {data['round']}: sending {len(data['sending'])} to the response model…"
            )
        elif name == "hia_response":
            self.status.update(f"answer for candidate {data['candidate']} received, measuring…")


class Progress:
    """A rich status spinner fed by LangChain callbacks; silent when disabled (``--json``)."""

    def __init__(self, enabled: bool) -> None:
        self.status = _console.status("proposing candidate prompts…") if enabled else None
        self.handler = _ProgressHandler(self.status)

    def __enter__(self) -> Progress:
        if self.status is not None:
            self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status is not None:
            self.status.__exit__(None, None, None)


def _fmt(scores: dict[str, float] | None) -> str:
    if not scores:
        return "–"
    return " ".join(f"{k[:4]} {v:.1f}" for k, v in scores.items())


def render_result(answer: str, trace: dict[str, Any], seconds: float) -> None:
    """Print the candidate table, the chosen answer and what it cost."""
    out = Console()
    table = Table(title=f"Candidates (goal: {_fmt(trace['goal'])})", show_lines=False)
    for col in ("#", "prompt (added instructions)", "predicted", "measured", "reward", "sent"):
        table.add_column(col)
    first = next((c["prompt"] for c in trace["candidates"] if c["origin"] == "original"), "")
    for c in trace["candidates"]:
        prompt = c["prompt"].replace(first, "…" if first else "").strip() or "(original)"
        note = c["rejected"] or ("yes" if c["sent"] else "")
        reward = "" if c["reward"] is None else f"{c['reward']:.3f}"
        style = "bold green" if c["id"] == trace["best"] else None
        table.add_row(
            str(c["id"]),
            prompt[:70],
            _fmt(c["predicted"]),
            _fmt(c["measured"]),
            reward,
            note,
            style=style,
        )
    out.print(table)
    out.print(
        Panel(
            answer, title=f"answer (reward {trace['reward']:.3f}, scores {_fmt(trace['scores'])})"
        )
    )
    out.print(f"{calls_by_role(trace)}  ·  {seconds:.1f} s")


def calls_by_role(trace: dict[str, Any]) -> str:
    """Every role's calls, zeros included, so a free default is visibly free."""
    usage = trace["usage"]
    parts = [f"{trace['calls']} response calls (budget {trace['budget']})"]
    for role in ("optimizer", "draft", "judge"):
        u = usage.get(role, {})
        tokens = f", {u['total_tokens']} tok" if u.get("calls") else ""
        parts.append(f"{u.get('calls', 0)} {role}{tokens}")
    return " · ".join(parts)

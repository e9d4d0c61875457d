"""What ``hia-chain align`` shows a person: live progress, then the prompt, the candidates and
the answer.

Laid out to fit an 80-column terminal: the instructions a candidate adds (``[system] ...``
when sent as a system message, ``≤N tok`` when it caps the output) and why it was rejected
wrap at word boundaries in their own columns, scores show only the goal's objectives (in the
goal's order), and text from the prompt or the model is never read as rich markup.
"""

from __future__ import annotations

import textwrap
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from rich import box
from rich.console import Console
from rich.panel import Panel
from rich.status import Status
from rich.table import Table
from rich.text import Text

from hia_chain.instructions import added_text

__all__ = ["Progress", "calls_by_role", "render_result"]

_PROMPT_CHARS = 300
"""The prompt is shown up to this many characters (cut at a word boundary)."""
_ADDED_CHARS = 120
"""A candidate's added instructions are shown up to this many characters (at a word)."""


class _ProgressHandler(BaseCallbackHandler):
    """Turns the search's custom events into status-line updates."""

    def __init__(self, status: Status) -> None:
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
    """A rich status spinner on stderr, fed by LangChain callbacks (``handler``)."""

    def __init__(self) -> None:
        self.status = Console(stderr=True).status("proposing candidate prompts…")
        self.handler = _ProgressHandler(self.status)

    def __enter__(self) -> Progress:
        self.status.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.status.__exit__(None, None, None)


def _shorten(text: str, width: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters."""
    return textwrap.shorten(text, width, placeholder=" …")


def _scores(scores: dict[str, float] | None, names: list[str]) -> str:
    """The scores of ``names`` in order, one decimal each: ``"1.2 0.9"``."""
    if not scores:
        return "–"
    return " ".join(f"{scores[n]:.1f}" if n in scores else "–" for n in names)


def _added(candidate: dict[str, Any], original: str) -> str:
    """What a candidate changes: the words it adds to the user's turn, ``[system] ...`` for an
    instruction sent as a system message, and ``≤N tok`` for its own output cap, so a capped
    variant and its uncapped twin are told apart."""
    parts = []
    if candidate.get("system"):
        parts.append(f"[system] {candidate['system']}")
    if candidate["origin"] != "original" and candidate["prompt"] != original:
        parts.append(added_text(original, candidate["prompt"]) if original else candidate["prompt"])
    cap = candidate.get("max_tokens")
    marker = "" if cap is None else f" ≤{cap} tok"
    shown = _shorten(" ".join(p for p in parts if p), _ADDED_CHARS - len(marker))
    return (shown or "(the prompt as written)") + marker


def _why_not(candidate: dict[str, Any]) -> str:
    """Why a candidate has no usable answer: stage 1 rejected it, or its call failed."""
    if candidate.get("rejected"):
        return str(candidate["rejected"])
    if candidate.get("error"):
        return f"failed: {candidate['error']}"
    return ""


def candidate_table(prompt: str, trace: dict[str, Any]) -> Table:
    """Every candidate: the instructions it adds to the prompt, predicted and measured scores
    (the goal's objectives, in its order), reward, whether it was sent, and why not."""
    names = list(trace["goal"])
    candidates = trace["candidates"]
    original = next((c["prompt"] for c in candidates if c["origin"] == "original"), prompt)
    reasons = [_why_not(c) for c in candidates]
    # one space of padding right of each cell and one divider: columns two spaces apart
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), show_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("added instructions", min_width=18, overflow="fold")
    table.add_column("predicted", no_wrap=True)
    table.add_column("measured", no_wrap=True)
    table.add_column("reward", justify="right", no_wrap=True)
    table.add_column("sent", no_wrap=True)
    if any(reasons):
        table.add_column("rejected", min_width=12, overflow="fold")
    for c, reason in zip(candidates, reasons, strict=True):
        chosen = c["id"] == trace["best"]
        row = [
            Text(f"{c['id']}{'*' if chosen else ' '}"),
            Text(_added(c, original)),
            Text(_scores(c["predicted"], names)),
            Text(_scores(c["measured"], names)),
            Text("" if c["reward"] is None else f"{c['reward']:.3f}"),
            Text("yes" if c["sent"] else ""),
        ]
        if any(reasons):
            row.append(Text(reason))
        table.add_row(*row, style="bold green" if chosen else None)
    return table


def render_result(
    prompt: str,
    answer: str,
    trace: dict[str, Any],
    seconds: float,
    console: Console | None = None,
) -> None:
    """Print the prompt and goal, the candidate table, the chosen answer and what it cost."""
    out = console or Console()
    goal = " · ".join(f"{k} {v:g}" for k, v in trace["goal"].items())
    out.print(Text.assemble(("prompt  ", "bold"), _shorten(prompt, _PROMPT_CHARS)))
    out.print(
        Text.assemble(
            ("goal    ", "bold"),
            f"{goal}  ({trace['search']}, {trace['reward_function']} reward)",
        )
    )
    out.print(candidate_table(prompt, trace))
    out.print(
        Text(
            f"scores in goal order ({', '.join(trace['goal'])}), 0–4 · * the chosen answer",
            style="dim",
        )
    )
    reward = "–" if trace["reward"] is None else f"{trace['reward']:.3f}"
    title = f"answer of #{trace['best']} · reward {reward}"
    out.print(Panel(Text(answer), title=title, title_align="left"))
    out.print(f"{calls_by_role(trace)} · {seconds:.1f} s")


def calls_by_role(trace: dict[str, Any]) -> str:
    """Every role's calls, zeros included, so a free default is visibly free."""
    usage = trace["usage"]
    parts = [f"{trace['calls']} response calls (budget {trace['budget']})"]
    for role in ("optimizer", "draft", "judge"):
        u = usage.get(role, {})
        tokens = f", {u['total_tokens']} tok" if u.get("calls") else ""
        parts.append(f"{u.get('calls', 0)} {role}{tokens}")
    return " · ".join(parts)

"""Summaries of a benchmark run: the markdown table and the reward-vs-budget plot."""

from __future__ import annotations

import csv
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from hia_chain.goals import REWARD_NAMES

__all__ = ["mean_ci", "spearman", "summarize", "write_plot"]


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% normal interval."""
    if not values:
        return math.nan, math.nan
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan
    return m, 1.96 * statistics.stdev(values) / math.sqrt(len(values))


def _ranks(xs: Sequence[float]) -> list[float]:
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    ranks = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman rank correlation (ties averaged); NaN when either side is constant."""
    if len(xs) < 3:
        return math.nan
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    vx = math.sqrt(sum((a - mx) ** 2 for a in rx))
    vy = math.sqrt(sum((b - my) ** 2 for b in ry))
    return cov / (vx * vy) if vx and vy else math.nan


def _load(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _table(
    rows: list[dict[str, str]], reward: str, methods: list[str], budgets: list[int]
) -> list[str]:
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        if r["reward_function"] == reward and r["reward"]:
            cells[(r["method"], int(r["budget"]))].append(float(r["reward"]))
    lines = [
        f"| method | {' | '.join(f'B={b}' for b in budgets)} |",
        "|---" * (len(budgets) + 1) + "|",
    ]
    for m in methods:
        out = []
        for b in budgets:
            mean, ci = mean_ci(cells.get((m, b), []))
            out.append(
                "–"
                if math.isnan(mean)
                else f"{mean:.3f} ± {ci:.3f}"
                if not math.isnan(ci)
                else f"{mean:.3f}"
            )
        note = " ¹" if m.endswith("[draft]") else ""
        lines.append(f"| {m}{note} | {' | '.join(out)} |")
    oracle = [
        float(r["reward"])
        for r in rows
        if r["method"] == "oracle" and r["reward_function"] == reward and r["reward"]
    ]
    if oracle:
        mean, ci = mean_ci(oracle)
        lines.append(
            f"| oracle (all first-round candidates sent) | {mean:.3f} ± {ci:.3f} (any B) |"
            + " |" * (len(budgets) - 1)
        )
    return lines


def _means(rows: list[dict[str, str]], reward: str) -> dict[tuple[str, int], float]:
    cells: dict[tuple[str, int], list[float]] = defaultdict(list)
    for r in rows:
        if r["reward_function"] == reward and r["reward"] and r["method"] != "oracle":
            cells[(r["method"], int(r["budget"]))].append(float(r["reward"]))
    return {k: statistics.fmean(v) for k, v in cells.items()}


def _call_saving(means: dict[tuple[str, int], float], hia: str, budgets: list[int]) -> list[str]:
    lines = []
    for b in (1, 2):
        if (hia, b) not in means:
            continue
        target = means[(hia, b)]
        match = next(
            (bb for bb in budgets if means.get(("best-of-n", bb), -math.inf) >= target), None
        )
        said = f"B={match}" if match else f"not reached by B={max(budgets)}"
        lines.append(f"- best-of-N matches {hia} at B={b} ({target:.3f}): {said}")
    return lines


_PAIRS = (
    ("hia-bon[learned]", "best-of-n"),
    ("hia-bon[learned]", "bon-unfiltered"),
    ("hia-greedy[learned]", "greedy-unfiltered"),
    ("hia-beam[learned]", "beam-unfiltered"),
)


def _paired(rows: list[dict[str, str]], budgets: list[int]) -> list[str]:
    """Per-item reward differences (euclidean): every method saw the same sampled answers
    (common random numbers), so differences are far less noisy than the means' intervals."""
    reward: dict[tuple[str, str, int], float] = {
        (r["item"], r["method"], int(r["budget"])): float(r["reward"])
        for r in rows
        if r["reward_function"] == "euclidean" and r["reward"]
    }
    lines = [
        "| HIA − baseline | " + " | ".join(f"B={b}" for b in budgets) + " |",
        "|---" * (len(budgets) + 1) + "|",
    ]
    for hia, base in _PAIRS:
        cells = []
        for b in budgets:
            items = {i for i, m, bb in reward if m == hia and bb == b}
            diffs = [
                reward[(i, hia, b)] - reward[(i, base, b)] for i in items if (i, base, b) in reward
            ]
            mean, ci = mean_ci(diffs)
            if math.isnan(mean):
                cells.append("–")
                continue
            better = sum(d > 1e-9 for d in diffs)
            worse = sum(d < -1e-9 for d in diffs)
            cells.append(f"{mean:+.3f} ± {ci:.3f} ({better}↑ {worse}↓)")
        lines.append(f"| {hia} − {base} | {' | '.join(cells)} |")
    return lines


def summarize(out: Path) -> str:
    """Write ``summary.md`` from ``results.csv`` and ``predictions.csv``; return its text."""
    rows = _load(out / "results.csv")
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "oracle"))
    budgets = sorted({int(r["budget"]) for r in rows if r["method"] != "oracle"})
    items = {r["item"] for r in rows}
    parts = [
        "# hia-chain benchmark",
        "",
        f"{len(items)} prompt×goal items, methods at equal response-call budgets; mean reward ± 95% CI.",
        "",
    ]
    for reward in REWARD_NAMES:
        parts += [f"## reward = {reward}", "", *_table(ok, reward, methods, budgets), ""]
        means = _means(ok, reward)
        parts += [
            "Call saving:",
            *(_call_saving(means, "hia-bon[learned]", budgets) or ["- n/a"]),
            "",
        ]
    parts += [
        "## Paired differences (euclidean reward, per item; ± 95% CI; items better↑ / worse↓)",
        "",
        *_paired(ok, budgets),
        "",
    ]
    parts += ["## How good is each filter (Spearman ρ, heuristic prediction vs measured score)", ""]
    preds = _load(out / "predictions.csv") if (out / "predictions.csv").exists() else []
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p in preds:
        g = groups[(p["heuristic"], p["objective"])]
        g[0].append(float(p["predicted"]))
        g[1].append(float(p["measured"]))
    parts += ["| heuristic | objective | n | ρ |", "|---|---|---|---|"]
    for (h, o), (xs, ys) in sorted(groups.items()):
        parts.append(f"| {h} | {o} | {len(xs)} | {spearman(xs, ys):.2f} |")
    parts += [
        "",
        "¹ The drafter is the embedded model, which is also the response model here: its drafts",
        "share the response model's weights, so this filter is optimistic. A real deployment drafts",
        "with a model much smaller than the API model; `learned` needs no drafter at all.",
        "",
        f"Failed runs: {len({(r['item'], r['method'], r['budget']) for r in failed})} "
        + (f"({', '.join(sorted({r['error'].split(':')[0] for r in failed}))})" if failed else ""),
    ]
    text = "\n".join(parts) + "\n"
    (out / "summary.md").write_text(text)
    return text


def write_plot(out: Path) -> Path:
    """``reward_vs_budget.png``: mean reward with 95% CI per method, one panel per reward."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in _load(out / "results.csv") if not r["error"]]
    fig, axes = plt.subplots(1, len(REWARD_NAMES), figsize=(6 * len(REWARD_NAMES), 4.5))
    for ax, reward in zip(axes, REWARD_NAMES, strict=True):
        cells: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r["reward_function"] == reward:
                cells[r["method"]][int(r["budget"])].append(float(r["reward"]))
        for method, by_b in cells.items():
            if method == "oracle":
                mean, _ = mean_ci([v for vs in by_b.values() for v in vs])
                ax.axhline(mean, color="grey", linestyle=":", label="oracle (all candidates)")
                continue
            bs = sorted(by_b)
            stats = [mean_ci(by_b[b]) for b in bs]
            ax.errorbar(
                bs,
                [m for m, _ in stats],
                yerr=[0 if math.isnan(c) else c for _, c in stats],
                marker="o",
                capsize=3,
                label=method,
                linestyle="--" if "unfiltered" in method or method == "best-of-n" else "-",
            )
        ax.set_xscale("log", base=2)
        ax.set_xlabel("response-call budget B")
        ax.set_ylabel(f"mean {reward} reward")
        ax.set_title(reward)
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = out / "reward_vs_budget.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

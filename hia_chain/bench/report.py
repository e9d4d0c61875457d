"""Summaries of a benchmark run: the markdown table and the reward-vs-budget plot."""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from hia_chain.factory import DEFAULT_HEURISTIC
from hia_chain.goals import REWARD_NAMES

__all__ = ["mean_ci", "ratio_ci", "spearman", "summarize", "write_plot"]


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% Student-t interval (NaN half-width below n=2).

    Student's t, not the normal z: at the benchmark's small n (4 items in ``--quick``, a few
    dozen in a split) z is visibly too narrow (38% at n=4).
    """
    if not values:
        return math.nan, math.nan
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, math.nan
    sem = statistics.stdev(values) / math.sqrt(len(values))
    return m, float(stats.t.ppf(0.975, len(values) - 1)) * sem


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman rank correlation (ties averaged); NaN when either side is constant."""
    if len(xs) < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return math.nan
    return float(stats.spearmanr(xs, ys).statistic)


def ratio_ci(gains: Sequence[float], spans: Sequence[float]) -> tuple[float, float, float]:
    """Σgain / Σspan with a 95% paired percentile-bootstrap interval over items (scipy).

    A ratio of sums, not a mean of per-item ratios: an item whose candidates all do alike
    (span ≈ 0) would make its own ratio explode.
    """
    g, d = np.asarray(gains, dtype=float), np.asarray(spans, dtype=float)
    if len(g) == 0 or d.sum() <= 0:
        return math.nan, math.nan, math.nan
    point = float(g.sum() / d.sum())
    if len(g) < 3:
        return point, math.nan, math.nan
    res = stats.bootstrap(
        (g, d),
        lambda a, b, axis=-1: a.sum(axis=axis) / b.sum(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=2000,
        method="percentile",
        random_state=0,
    )
    return point, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _load(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _table(
    rows: list[dict[str, str]],
    reward: str,
    methods: list[str],
    budgets: list[int],
    ceiling: dict[str, list[float]] | None = None,
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
    if ceiling:
        for label, values in (
            ("random pick, expected (mean over first-round candidates)", ceiling["random"]),
            ("expected-reward oracle (best mean candidate)", ceiling["oracle"]),
            ("cross-validated oracle (picked on other samples)", ceiling["crossval"]),
        ):
            if not values:
                continue
            mean, ci = mean_ci(values)
            lines.append(f"| {label} | {mean:.3f} ± {ci:.3f} (any B) |" + " |" * (len(budgets) - 1))
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


_PAIRS = tuple(
    (f"hia-{search}[{h}]", base)
    for h in ("warm", "learned", "instruction")
    for search, base in (
        ("bon", "best-of-n"),
        ("bon", "bon-unfiltered"),
        ("greedy", "greedy-unfiltered"),
        ("beam", "beam-unfiltered"),
    )
)
HEADLINES = tuple(
    dict.fromkeys(
        (
            f"hia-bon[{DEFAULT_HEURISTIC}]",
            "hia-bon[instruction]",
            "hia-bon[learned]",
            "hia-bon[warm]",
        )
    )
)
"""The HIA methods the targets are checked for, the library's default first; call saving is
shown for the first one the run has."""


def _rewards(
    rows: list[dict[str, str]], fn: str = "euclidean"
) -> dict[tuple[str, str, int], float]:
    return {
        (r["item"], r["method"], int(r["budget"])): float(r["reward"])
        for r in rows
        if r["reward_function"] == fn and r["reward"]
    }


def _diffs(
    reward: dict[tuple[str, str, int], float], a: tuple[str, int], b: tuple[str, int]
) -> list[float]:
    """Per-item ``a − b`` over the items both ran (common random numbers: same samples)."""
    items = sorted({i for i, m, bb in reward if (m, bb) == a})
    return [reward[(i, *a)] - reward[(i, *b)] for i in items if (i, *b) in reward]


def _diff_cell(diffs: list[float]) -> str:
    mean, ci = mean_ci(diffs)
    if math.isnan(mean):
        return "–"
    better = sum(d > 1e-9 for d in diffs)
    worse = sum(d < -1e-9 for d in diffs)
    return f"{mean:+.3f} ± {ci:.3f} ({better}↑ {worse}↓)"


def _paired(rows: list[dict[str, str]], budgets: list[int]) -> list[str]:
    """Per-item reward differences (euclidean): every method saw the same sampled answers
    (common random numbers), so differences are far less noisy than the means' intervals."""
    reward = _rewards(rows)
    methods = {m for _, m, _ in reward}
    lines = [
        "| HIA − baseline | " + " | ".join(f"B={b}" for b in budgets) + " |",
        "|---" * (len(budgets) + 1) + "|",
    ]
    for hia, base in _PAIRS:
        if hia in methods and base in methods:
            cells = [_diff_cell(_diffs(reward, (hia, b), (base, b))) for b in budgets]
            lines.append(f"| {hia} − {base} | {' | '.join(cells)} |")
    return lines


def _samples(out: Path, fn: str = "euclidean") -> dict[str, dict[str, dict[int, float]]]:
    """Per item and first-round candidate, the reward of each of the oracle's passes."""
    path = out / "oracle.csv"
    if not path.exists():
        return {}
    found: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for r in _load(path):
        if r["reward_function"] == fn:
            found[r["item"]][r["candidate"]][int(r["pass"])] = float(r["reward"])
    return found


def _expected(out: Path, fn: str = "euclidean") -> dict[str, dict[str, float]]:
    """Per item, each first-round candidate's mean reward over the oracle's passes."""
    return {
        item: {p: statistics.fmean(by_pass.values()) for p, by_pass in cands.items()}
        for item, cands in _samples(out, fn).items()
    }


def _crossval_oracle(cands: dict[str, dict[int, float]]) -> float:
    """Pick by the mean of all passes but one, score on the held-out pass, average over
    held-out passes: what knowing the candidates' means buys beyond luck. The plain best
    mean is biased upward by the noise it selects on (the winner's curse)."""
    passes = sorted({p for by_pass in cands.values() for p in by_pass})
    if len(passes) < 2:
        return math.nan
    scores = []
    for held in passes:
        rest = [p for p in passes if p != held]
        usable = [c for c in cands if held in cands[c] and any(p in cands[c] for p in rest)]
        if not usable:
            continue

        def train_mean(c: str, rest: list[int] = rest) -> float:
            return statistics.fmean(cands[c][p] for p in rest if p in cands[c])

        scores.append(cands[max(usable, key=train_mean)][held])
    return statistics.fmean(scores) if scores else math.nan


def _ceiling(out: Path, fn: str = "euclidean") -> dict[str, list[float]]:
    samples = _samples(out, fn)
    expected = _expected(out, fn)
    cv = [_crossval_oracle(c) for c in samples.values()]
    return {
        "random": [statistics.fmean(e.values()) for e in expected.values()],
        "oracle": [max(e.values()) for e in expected.values()],
        "crossval": [v for v in cv if not math.isnan(v)],
    }


def _captured(
    rows: list[dict[str, str]], expected: dict[str, dict[str, float]], methods: list[str]
) -> dict[str, tuple[int, float, float, float, float]]:
    """Per bon method at B=1: n, mean expected reward of its pick, and captured gain with CI.

    Captured gain = (R_pick − R_random) / (R_oracle − R_random) with expected rewards, so a
    lucky sample neither flatters nor hurts a filter; the oracle's max over noisy means is
    biased upward (winner's curse), which makes the figure conservative.
    """
    chosen = {
        (r["item"], r["method"]): r["chosen"]
        for r in rows
        if r["budget"] == "1" and r["reward_function"] == "euclidean" and r.get("chosen")
    }
    out = {}
    for m in methods:
        picks, gains, spans = [], [], []
        for item, e in expected.items():
            pick = chosen.get((item, m))
            if pick is None or pick not in e:
                continue
            rand = statistics.fmean(e.values())
            picks.append(e[pick])
            gains.append(e[pick] - rand)
            spans.append(max(e.values()) - rand)
        if picks:
            point, low, high = ratio_ci(gains, spans)
            out[m] = (len(picks), statistics.fmean(picks), point, low, high)
    return out


def _crossval_captured(out: Path) -> dict[str, tuple[int, float, float, float, float]]:
    """The cross-validated oracle as a row of the captured-gain table: the share of the
    naive ceiling that survives picking on samples other than the ones scored."""
    samples, expected = _samples(out), _expected(out)
    picks, gains, spans = [], [], []
    for item, cands in samples.items():
        cv = _crossval_oracle(cands)
        if math.isnan(cv):
            continue
        rand = statistics.fmean(expected[item].values())
        picks.append(cv)
        gains.append(cv - rand)
        spans.append(max(expected[item].values()) - rand)
    if not picks:
        return {}
    point, low, high = ratio_ci(gains, spans)
    return {"cross-validated oracle": (len(picks), statistics.fmean(picks), point, low, high)}


def _rho(
    preds: list[dict[str, str]], means: dict[tuple[str, str], dict[str, float]] | None = None
) -> dict[tuple[str, str], tuple[int, float]]:
    """ρ per (heuristic, objective) against one measured sample, or, with ``means``, against
    the mean of the oracle's samples of the same candidate (the noise-aware version: one
    sample's noise caps the first well below 1 even for a perfect predictor)."""
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for p in preds:
        if means is None:
            target = float(p["measured"])
        else:
            found = means.get((p["item"], p.get("candidate", "")), {})
            if p["objective"] not in found:
                continue
            target = found[p["objective"]]
        g = groups[(p["heuristic"], p["objective"])]
        g[0].append(float(p["predicted"]))
        g[1].append(target)
    return {k: (len(xs), spearman(xs, ys)) for k, (xs, ys) in sorted(groups.items())}


def _mean_scores(out: Path) -> dict[tuple[str, str], dict[str, float]]:
    """Per (item, candidate text), each objective's mean over the oracle's samples."""
    path = out / "oracle.csv"
    if not path.exists():
        return {}
    samples: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in _load(path):
        if r["reward_function"] == "euclidean":
            for name, value in json.loads(r["scores"]).items():
                samples[(r["item"], r["candidate"])][name].append(float(value))
    return {k: {n: statistics.fmean(v) for n, v in by.items()} for k, by in samples.items()}


def _targets(
    rows: list[dict[str, str]],
    captured: dict[str, tuple[int, float, float, float, float]],
    rho: dict[tuple[str, str], tuple[int, float]],
    rho_mean: dict[tuple[str, str], tuple[int, float]],
) -> list[str]:
    """The goals of issue #13, each met or missed by how much."""
    reward = _rewards(rows)
    methods = {m for _, m, _ in reward}
    lines: list[str] = []
    for hia in (h for h in HEADLINES if h in methods):
        lines += [f"{hia}:", *_targets_for(hia, reward, captured, rho, rho_mean)]
    return lines or ["- no HIA bon method in this run"]


def _targets_for(
    hia: str,
    reward: dict[tuple[str, str, int], float],
    captured: dict[str, tuple[int, float, float, float, float]],
    rho: dict[tuple[str, str], tuple[int, float]],
    rho_mean: dict[tuple[str, str], tuple[int, float]],
) -> list[str]:
    lines: list[str] = []

    def paired(label: str, a: tuple[str, int], b: tuple[str, int]) -> None:
        d = _diffs(reward, a, b)
        mean, ci = mean_ci(d)
        if math.isnan(mean):
            lines.append(f"- {label}: not measured")
            return
        low = mean - ci
        verdict = "met" if low > 0 else f"missed (CI lower bound {low:+.3f})"
        lines.append(f"- {label}: {mean:+.3f} ± {ci:.3f} → {verdict}")

    paired("@1 − one plain call > 0", (hia, 1), ("best-of-n", 1))
    paired("@1 − bon-unfiltered@1 > 0", (hia, 1), ("bon-unfiltered", 1))
    d = _diffs(reward, (hia, 1), ("best-of-n", 4))
    if d:
        mean = statistics.fmean(d)
        verdict = "met" if mean >= 0 else f"missed by {-mean:.3f}"
        lines.append(f"- @1 ≥ best-of-N@4 (point estimate): {mean:+.3f} → {verdict}")
    kind = hia[hia.index("[") + 1 : -1]
    for (h, o), (n, r) in rho.items():
        if h == kind:
            verdict = "met" if r >= 0.5 else f"missed by {0.5 - r:.2f}"
            noise_aware = rho_mean.get((h, o), (0, math.nan))[1]
            lines.append(
                f"- ρ ≥ 0.5 for {o} (n={n}): {r:.2f} → {verdict} "
                f"(against the mean of samples: {noise_aware:.2f})"
            )
    if hia in captured:
        _, _, point, low, high = captured[hia]
        verdict = "met" if point >= 0.5 else f"missed by {0.5 - point:.0%}"
        lines.append(
            f"- captured gain ≥ 50% at B=1: {point:.0%} [{low:.0%}, {high:.0%}] → {verdict}"
        )
    return lines


def summarize(out: Path) -> str:
    """Write ``summary.md`` from the run's CSV files; return its text."""
    rows = _load(out / "results.csv")
    ok = [r for r in rows if not r["error"]]
    failed = [r for r in rows if r["error"]]
    methods = list(dict.fromkeys(r["method"] for r in rows if r["method"] != "oracle"))
    budgets = sorted({int(r["budget"]) for r in rows if r["method"] != "oracle"})
    items = {r["item"] for r in rows}
    meta = json.loads((out / "meta.json").read_text()) if (out / "meta.json").exists() else {}
    parts = [
        "# hia-chain benchmark",
        "",
        f"{len(items)} prompt×goal items"
        + (f" from the **{meta['split']}** split of {meta['prompts']}" if meta else "")
        + "; methods at equal response-call budgets; mean reward ± 95% t-interval.",
        "",
    ]
    for reward in REWARD_NAMES:
        ceiling = _ceiling(out, reward)
        parts += [f"## reward = {reward}", "", *_table(ok, reward, methods, budgets, ceiling), ""]
        means = _means(ok, reward)
        hia = next((h for h in HEADLINES if h in methods), HEADLINES[0])
        parts += ["Call saving:", *(_call_saving(means, hia, budgets) or ["- n/a"]), ""]
    parts += [
        "## Paired differences (euclidean reward, per item; ± 95% CI; items better↑ / worse↓)",
        "",
        *_paired(ok, budgets),
        "",
    ]
    captured = _captured(ok, _expected(out), [m for m in methods if "bon" in m])
    if captured:
        captured.update(_crossval_captured(out))
    if captured:
        parts += [
            "## Filters at B=1 against the expected-reward ceiling (euclidean)",
            "",
            "Expected reward of the candidate each method sends at B=1 (its mean over the",
            "oracle's samples), and captured gain (R_pick − R_random) / (R_oracle − R_random),",
            "95% paired bootstrap CI over items.",
            "",
            "| method | n | expected reward of the pick | captured gain |",
            "|---|---|---|---|",
        ]
        for m, (n, pick, point, low, high) in captured.items():
            parts.append(f"| {m} | {n} | {pick:.3f} | {point:.0%} [{low:.0%}, {high:.0%}] |")
        parts.append("")
    preds = _load(out / "predictions.csv") if (out / "predictions.csv").exists() else []
    rho = _rho(preds)
    rho_mean = _rho(preds, _mean_scores(out))
    parts += [
        "## How good is each filter (Spearman ρ, heuristic prediction vs measured score)",
        "",
        "ρ against the one measured sample, and against the mean of the oracle's samples of the",
        "same candidate (first-round candidates only).",
        "",
        "| heuristic | objective | n | ρ (one sample) | n | ρ (mean of samples) |",
        "|---|---|---|---|---|---|",
        *(
            f"| {h} | {o} | {n} | {r:.2f} | {rho_mean.get((h, o), (0, math.nan))[0]} | "
            f"{rho_mean.get((h, o), (0, math.nan))[1]:.2f} |"
            for (h, o), (n, r) in rho.items()
        ),
        "",
        "## Targets",
        "",
        *_targets(ok, captured, rho, rho_mean),
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
        ceiling = _ceiling(out, reward)
        if ceiling["oracle"]:
            ax.axhline(
                statistics.fmean(ceiling["oracle"]),
                color="grey",
                linestyle=":",
                label="expected-reward oracle",
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

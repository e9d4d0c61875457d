"""The ``hia-chain`` command in process: flags, help, exit codes, display and ``--json``.

Why: the command is the first thing many users run; a flag spelled two ways, a choice that
drifts from the library, a table that breaks an 80-column terminal or a JSON without the
candidates' ids and answers are bugs they meet before any alignment happens.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from hia_chain.cli import build_parser, main
from hia_chain.cli.align import as_json, build_aligned
from hia_chain.cli.display import calls_by_role, candidate_table, render_result
from hia_chain.factory import DEFAULT_HEURISTIC, HEURISTICS
from hia_chain.goals import REWARD_NAMES
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic
from hia_chain.scorers.text import BUILTIN_OBJECTIVES
from hia_chain.search.types import FILTERS, SEARCHES
from hia_chain.testing import FakeChatModel

OFFLINE = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def _choices(command: str, flag: str) -> tuple[str, ...]:
    action = next(a for a in _subparser(command)._actions if flag in a.option_strings)
    return tuple(action.choices or ())


# -- flags ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--goal", "verbosity"], "expected NAME=NUMBER"),
        (["--goal", "tone=1"], "unknown objective 'tone'"),
        (["--goal", "verbosity=7"], "outside the objective's scale"),
        (["--budget", "0"], "`budget` must be an integer >= 1"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url needs --model"),
        (["--heuristic-state", "s.json"], "for the learned heuristic, not 'instruction'"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["align", "Hi", "--heuristic", "instruction"]
    if "--base-url" not in args:
        base += OFFLINE
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "argv", [["align", "Hi", "--search", "dfs"], ["ivg", "Hi", "--guidance", "sideways"]]
)
def test_unknown_choice_is_an_argparse_error(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_choices_come_from_the_library() -> None:
    """A search, filter, reward or heuristic added to the library is a choice at once."""
    assert _choices("align", "--search") == SEARCHES == _choices("serve", "--search")
    assert _choices("align", "--filter") == FILTERS
    assert _choices("align", "--reward") == REWARD_NAMES == _choices("serve", "--reward")
    assert _choices("align", "--heuristic") == HEURISTICS


def test_the_default_heuristic_is_the_librarys_and_a_warm_start_implies_learned(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state.json"
    LearnedHeuristic().save(state)
    parse, goal = _subparser("align").parse_args, {"verbosity": 1.0}
    plain = build_aligned(parse(["x"]), goal, FakeChatModel()).heuristic
    warm = build_aligned(parse(["x", "--heuristic-state", str(state)]), goal, FakeChatModel())
    assert DEFAULT_HEURISTIC == "instruction" and isinstance(plain, InstructionHeuristic)
    assert isinstance(warm.heuristic, LearnedHeuristic)


def test_one_spelling_per_flag_across_subcommands() -> None:
    """`--max-tokens` and `--model` everywhere; the old ivg spellings are hidden aliases."""
    for command in ("align", "calibrate", "ivg"):
        help_text = _subparser(command).format_help()
        assert "--max-tokens" in help_text and "--model" in help_text, command
        assert "--max-new-tokens" not in help_text and "--model-path" not in help_text
    old = _subparser("ivg").parse_args(["x", "--max-new-tokens", "7", "--model-path", "/m"])
    new = _subparser("ivg").parse_args(["x", "--max-tokens", "7", "--model", "/m"])
    assert (old.max_tokens, old.model) == (new.max_tokens, new.model) == (7, "/m")


SHARED_FLAGS = {
    "--goal": {"align", "ivg", "serve"},
    "--max-tokens": {"align", "calibrate", "ivg", "serve"},
    "--temperature": {"align", "calibrate", "ivg"},
    "--seed": {"align", "calibrate", "ivg", "bench"},
    "--base-url": {"align", "calibrate", "bench"},
    "--model": {"align", "calibrate", "ivg", "bench"},
    "--heuristic": {"align", "serve"},
    "--heuristic-state": {"align", "serve", "bench"},
    "--budget": {"align", "serve"},
    "--search": {"align", "serve"},
    "--reward": {"align", "serve"},
    "--json": {"align", "ivg"},
    "--out": {"calibrate", "bench"},
}
"""Which subcommands take each flag that several take: what the README's Flags paragraph and
the ``cli.options`` docstring say (no flag is in every subcommand)."""


def test_shared_flags_are_where_the_readme_says() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    where: dict[str, set[str]] = {}
    for name, command in sub.choices.items():
        for action in command._actions:
            if action.help != argparse.SUPPRESS:
                for flag in action.option_strings:
                    where.setdefault(flag, set()).add(name)
    shared = {
        f: names for f, names in where.items() if len(names) > 1 and f not in ("-h", "--help")
    }
    assert shared == SHARED_FLAGS


def test_cli_defaults_are_the_librarys() -> None:
    """A default changed in SearchSettings or ServerConfig is the command's at once."""
    from hia_chain.search.types import SearchSettings
    from hia_chain.server.config import ServerConfig

    align = _subparser("align").parse_args(["x"])
    library = SearchSettings()
    for name in ("budget", "search", "filter", "reward"):
        assert getattr(align, name) == getattr(library, name), name
    serve = _subparser("serve").parse_args([])
    config = ServerConfig()
    for name in ("upstream_timeout", "host", "port", "workers", "budget", "max_budget", "search",
                 "reward", "max_tokens", "max_retries", "log_level"):  # fmt: skip
        assert getattr(serve, name) == getattr(config, name), name
    help_text = " ".join(_subparser("serve").format_help().split())
    assert f"(default {config.max_tokens})" in help_text and f"default {config.port}" in help_text
    assert f"(default {library.budget})" in " ".join(_subparser("align").format_help().split())


def test_ivg_speed_takes_max_tokens_and_the_old_spelling(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from hia_chain.bench import ivg_speed

    asked: list[int] = []

    def run_speed(prompts: list[str], max_new_tokens: int, **kwargs: Any) -> list[Any]:
        asked.append(max_new_tokens)
        return []

    monkeypatch.setattr(ivg_speed, "run_speed", run_speed)
    monkeypatch.setattr(ivg_speed, "_print_speed", lambda *a: None)
    assert ivg_speed.main(["--max-tokens", "5"]) == 0
    assert ivg_speed.main(["--max-new-tokens", "6"]) == 0
    assert asked == [5, 6]
    assert "--max-new-tokens is renamed --max-tokens" in capsys.readouterr().err


def test_ivg_scores_the_answer_with_the_goals_builtin_scorers() -> None:
    from hia_chain.cli.ivg import _score
    from hia_chain.scorers.text import builtin_scorer

    text = "What a wonderful, delightful film. I loved every minute!"
    scores, reward = _score("Review this film.", text, {"sentiment": 4.0, "verbosity": 0.0})
    assert list(scores) == ["sentiment", "verbosity"]  # in the goal's order
    sentiment = asyncio.run(builtin_scorer("sentiment").ascore("Review this film.", [text]))[0]
    assert scores["sentiment"] == sentiment["sentiment"] and reward <= 0


def test_goal_help_lists_objectives_levels_and_the_default() -> None:
    for command, default in (("align", "default verbosity=1"), ("ivg", "default sentiment=4")):
        help_text = " ".join(_subparser(command).format_help().split())
        assert default in help_text
        for name in BUILTIN_OBJECTIVES:
            assert name in help_text
        assert "1 = two or three sentences (~30 words)" in help_text  # a verbosity level
        assert "0 = very simple words" in help_text  # a complexity level
    serve_help = " ".join(_subparser("serve").format_help().split())
    assert "default none" in serve_help


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"hia-chain {version('hia-chain')}"


@pytest.mark.parametrize("module", ["hia_chain", "hia_chain.cli"])
def test_python_dash_m_runs_the_command(module: str) -> None:
    """Both spellings run (the server launcher uses ``hia_chain.cli``), with the exit code."""
    out = subprocess.run(
        [sys.executable, "-m", module, "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and out.stdout.startswith("hia-chain ")
    bad = subprocess.run([sys.executable, "-m", module, "align"], capture_output=True, text=True)
    assert bad.returncode == 2 and "required: prompt" in bad.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["calibrate", "--calls", "0", "--out", "x.json"], "--calls must be >= 1"),
        (["bench", "--methods", "nope", "--limit", "1"], "unknown ['nope']"),
        (["bench", "--methods", "hia-bon[warm]", "--limit", "1"], "need --heuristic-state"),
        (["bench", "--oracle-samples", "0", "--limit", "1"], "--oracle-samples must be >= 1"),
    ],
)
def test_calibrate_and_bench_refuse_bad_flags(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if args[0] == "bench":
        for module in ("scipy", "matplotlib"):  # the [bench] extra, not in [test]
            pytest.importorskip(module, reason="`hia-chain bench` needs the [bench] extra")
    assert main([*args, *OFFLINE]) == 2
    assert message in capsys.readouterr().err


# -- what align prints ----------------------------------------------------------------------


def _align(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *flags: str
) -> tuple[str, str]:
    """``hia-chain align`` over a fake response model (no network, no weights)."""
    import hia_chain.factory

    fake = FakeChatModel(answer=lambda prompt, i: f"Answer {i}: vaccines train the body.")
    monkeypatch.setattr(hia_chain.factory, "response_model", lambda *a, **k: fake)
    argv = ["align", "Explain how vaccines work.", "--heuristic", "instruction", *flags]
    assert main([*argv, "--seed", "0"]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_json_carries_ids_the_chosen_id_answers_and_predicted_rewards(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _align(monkeypatch, capsys, "--json", "--budget", "2")
    data = json.loads(out)
    ids = [c["id"] for c in data["candidates"]]
    assert len(set(ids)) == len(ids) and data["chosen"] in ids
    chosen = next(c for c in data["candidates"] if c["id"] == data["chosen"])
    assert chosen["answer"] == data["answer"] and chosen["sent"]
    sent = [c for c in data["candidates"] if c["sent"]]
    assert len(sent) == data["calls"] == 2
    assert all(c["answer"].startswith("Answer ") for c in sent)
    assert all(isinstance(c["predicted_reward"], float) for c in sent)
    assert data["prompt"] == "Explain how vaccines work."


_TRACE: dict[str, Any] = {
    "goal": {"verbosity": 1.0, "complexity": 1.0},
    "search": "bon",
    "reward_function": "euclidean",
    "best": 1,
    "reward": -0.081,
    "calls": 2,
    "budget": 2,
    "usage": {"response": {"calls": 2, "total_tokens": 90}},
    "candidates": [
        {"id": 0, "origin": "original", "prompt": "Explain how vaccines work.",
         "predicted": {"verbosity": 2.3, "complexity": 1.9}, "measured": {"verbosity": 2.4,
         "complexity": 2.0}, "reward": -0.42, "sent": True, "rejected": None, "error": None},
        {"id": 1, "origin": "template", "prompt": "Explain how vaccines work. Answer briefly, "
         "in two or three sentences. Use plain, simple language anyone can follow.",
         "predicted": {"verbosity": 1.0, "complexity": 1.1}, "measured": {"verbosity": 1.2,
         "complexity": 0.9}, "reward": -0.081, "sent": True, "rejected": None, "error": None},
        {"id": 2, "origin": "template", "prompt": "Explain how vaccines work. Answer briefly, "
         "in two or three sentences.", "predicted": None, "measured": None, "reward": None,
         "sent": False, "rejected": "near-duplicate of an earlier candidate", "error": None},
    ],
}  # fmt: skip


def test_the_display_fits_80_columns_and_keeps_words_whole() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=80, color_system=None)
    render_result("Explain how vaccines work.", "Vaccines train the body.", _TRACE, 1.5, console)
    text = buffer.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "Explain how vaccines work." in lines[0]  # the user's prompt comes first
    header = next(line for line in lines if "added instructions" in line)
    assert "rejected" in header  # reasons have their own column
    words = text.split()
    for word in ("Answer", "briefly,", "sentences.", "anyone", "follow.", "near-duplicate"):
        assert word in words  # wrapped at word boundaries, never cut inside a word
    assert "1*" in words  # the chosen candidate is marked


_VARIANTS: dict[str, Any] = {
    **_TRACE,
    "candidates": [
        *_TRACE["candidates"][:2],
        {**_TRACE["candidates"][1], "id": 2, "max_tokens": 56, "placement": "user",
         "system": None, "reward": -0.2},
        {**_TRACE["candidates"][1], "id": 3, "prompt": "Explain how vaccines work.",
         "placement": "system", "system": "Answer briefly, in two or three sentences.",
         "max_tokens": None, "reward": -0.3},
    ],
}  # fmt: skip
"""The chosen candidate, its capped twin (#2), and the same instruction as a system message."""


def test_the_display_tells_capped_and_system_candidates_apart() -> None:
    buffer = io.StringIO()
    Console(file=buffer, width=80).print(candidate_table("Explain how vaccines work.", _VARIANTS))
    lines = buffer.getvalue().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows: dict[int, str] = {}  # candidate id -> its row, wrapped lines joined
    for line in lines[2:]:  # below the header and its rule
        first = line.split()[0].rstrip("*")
        if first.isdigit():
            rows[int(first)] = line
        else:
            rows[max(rows)] += " " + line
    words = {i: row.split() for i, row in rows.items()}
    assert "≤56" in words[2] and "tok" in words[2] and "≤56" not in words[1]
    assert "[system]" in words[3] and "briefly," in words[3] and "[system]" not in words[1]
    assert "(the prompt as written)" in rows[0] and "as written" not in rows[3]


def test_json_says_where_each_instruction_goes_and_its_cap(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = as_json("Explain how vaccines work.", "A.", {**_VARIANTS, "scores": {}, "filter":
                   "heuristic", "budget_exhausted": False, "stopped": "budget"}, 0.5)  # fmt: skip
    fields = [(c["placement"], c["system"], c["max_tokens"]) for c in data["candidates"]][2:]
    assert fields == [
        ("user", None, 56),
        ("system", "Answer briefly, in two or three sentences.", None),
    ]
    out, _ = _align(monkeypatch, capsys, "--json", "--budget", "2", "--goal", "verbosity=0")
    live = json.loads(out)["candidates"]
    assert all({"placement", "system", "max_tokens"} <= set(c) for c in live)
    assert any(c["max_tokens"] is not None for c in live)  # the template optimizer's capped twins


def test_the_display_reads_no_markup_from_the_prompt_or_answer() -> None:
    buffer = io.StringIO()
    render_result("Say [bold]hi[/bold]", "[red]x[/red]", _TRACE, 0.1, Console(file=buffer))
    assert "[bold]hi[/bold]" in buffer.getvalue() and "[red]x[/red]" in buffer.getvalue()


def test_as_json_keeps_every_candidate_field_the_display_uses() -> None:
    data = as_json("Explain how vaccines work.", "A.", {**_TRACE, "scores": {}, "filter":
                   "heuristic", "budget_exhausted": False, "stopped": "budget"}, 0.5)  # fmt: skip
    assert data["chosen"] == 1 and [c["id"] for c in data["candidates"]] == [0, 1, 2]
    assert data["candidates"][2]["rejected"] == "near-duplicate of an earlier candidate"


def test_the_summary_names_every_role_even_when_free() -> None:
    u = {"calls": 0, "total_tokens": 0}
    usage = {"response": {"calls": 2, "total_tokens": 90}, "optimizer": u, "draft": u, "judge": u}
    line = calls_by_role({"calls": 2, "budget": 2, "usage": usage})
    assert line == "2 response calls (budget 2) · 0 optimizer · 0 draft · 0 judge"


def test_the_human_display_runs_end_to_end(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = _align(monkeypatch, capsys, "--budget", "2")
    assert "Explain how vaccines work." in out and "response calls (budget 2)" in out


# -- ivg (tiny random Llama, no downloads; the command's own tests are in tests/unit_tests/local)


@pytest.fixture
def tiny_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    import hia_chain.local.embedded as embedded
    from tests.unit_tests.local._tiny_ivg import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer()
    monkeypatch.setattr(embedded, "load_embedded", lambda path=None: (model, tokenizer))


@pytest.mark.usefixtures("tiny_embedded")
def test_ivg_old_flag_spellings_still_work_with_a_notice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["ivg", "this movie", "--max-new-tokens", "3", "--seed", "0", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["new_tokens"] == 3
    assert "--max-new-tokens is renamed --max-tokens" in captured.err

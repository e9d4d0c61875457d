"""The CLI's argument handling, in process and without a model."""

from __future__ import annotations

import pytest

from hia_chain.cli import main, parse_goal
from hia_chain.errors import ConfigError


def test_parse_goal() -> None:
    assert parse_goal(["verbosity=1", "complexity=3.5"]) == {"verbosity": 1.0, "complexity": 3.5}
    for bad in (["verbosity"], ["=1"], ["verbosity=high"]):
        with pytest.raises(ConfigError, match="NAME=NUMBER"):
            parse_goal(bad)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--goal", "verbosity"], "expected NAME=NUMBER"),
        (["--goal", "tone=1"], "unknown objective 'tone'"),
        (["--goal", "verbosity=7"], "outside the objective's scale"),
        (["--budget", "0"], "`budget` must be an integer >= 1"),
        (["--base-url", "http://127.0.0.1:9/v1"], "--base-url needs --model"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["align", "Hi", "--heuristic", "instruction"]
    if "--base-url" not in args:
        base += ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*base, *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_unknown_flag_is_an_argparse_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["align", "Hi", "--search", "dfs"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_the_summary_names_every_role_even_when_free() -> None:
    from hia_chain._cli_display import calls_by_role

    u = {"calls": 0, "total_tokens": 0}
    usage = {"response": {"calls": 2, "total_tokens": 90}, "optimizer": u, "draft": u, "judge": u}
    line = calls_by_role({"calls": 2, "budget": 2, "usage": usage})
    assert line == "2 response calls (budget 2) · 0 optimizer · 0 draft · 0 judge"


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
    base = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    assert main([*args, *base]) == 2
    assert message in capsys.readouterr().err

"""IVGChatModel and the ``hia-chain ivg`` command on a tiny random Llama (no downloads)."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402

from hia_chain.cli import main as cli_main  # noqa: E402
from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local.hf_adapter import chat_ids  # noqa: E402
from hia_chain.local.ivg_chat_model import IVGChatModel  # noqa: E402
from hia_chain.local.values import ImplicitValue  # noqa: E402
from tests.unit_tests.local._tiny_ivg import WORDS, tiny_model, tiny_tokenizer  # noqa: E402

TOK = tiny_tokenizer()
MODEL = tiny_model()
# Repetition control reads the base stream's own prompt, so identities between guidance and
# prompting (different base prompts) and exact row-token counts (rows may end earlier under a
# penalty) are checked with it off; its own tests are in test_repetition.py.
NO_REPETITION_CONTROL = {"repetition_penalty": 1.0, "no_repeat_ngram_size": 0}


def ivg(**kw) -> IVGChatModel:
    kw.setdefault("goal", {"sentiment": 4})
    kw.setdefault("chunk_tokens", 4)
    kw.setdefault("max_tokens", 10)
    kw.setdefault("seed", 0)
    return IVGChatModel(hf_model=MODEL, tokenizer=TOK, **kw)


@pytest.mark.parametrize("mode", ["none", "token", "chunk", "both"])
def test_every_mode_answers_with_real_usage_and_a_trace(mode: str) -> None:
    msg = ivg(guidance=mode, **NO_REPETITION_CONTROL).invoke("this movie")
    assert isinstance(msg, AIMessage) and msg.content
    trace = msg.response_metadata["ivg"]
    prompt_tokens = len(chat_ids(TOK, [{"role": "user", "content": "this movie"}]))
    assert msg.usage_metadata["input_tokens"] == trace["input_tokens"] == prompt_tokens
    assert msg.usage_metadata["output_tokens"] == trace["new_tokens"] == 10
    assert trace["guidance"] == mode and trace["seconds"] > 0 and trace["seed"] == 0
    chunked = mode in ("chunk", "both")
    assert trace["models_per_token"] == (2 if mode in ("token", "both") else 1)
    assert trace["tokens_generated"] == (4 * 10 if chunked else 10)
    assert len(trace["beams"]) == (2 if chunked else 1)
    assert len(trace["chunks"]) == (3 if chunked else 1)
    assert (trace["guide_system_prompt"] is not None) == (mode in ("token", "both"))
    assert msg.response_metadata["finish_reason"] == "length"


def test_seeded_calls_repeat_and_per_call_overrides_apply() -> None:
    llm = ivg(guidance="both")
    assert llm.invoke("the plot").content == llm.invoke("the plot").content
    assert llm.invoke("the plot").content != llm.invoke("the plot", seed=1).content
    trace = llm.invoke("the plot", goal={"sentiment": 0}, max_tokens=6).response_metadata["ivg"]
    assert trace["goal"] == {"sentiment": 0.0} and trace["new_tokens"] <= 6
    assert "gloomy" in trace["guide_system_prompt"]


async def test_ainvoke_stream_and_batch_agree_with_invoke() -> None:
    llm = ivg(guidance="both")
    want = llm.invoke("the plot").content
    assert (await llm.ainvoke("the plot")).content == want
    chunks = list(llm.stream("the plot"))
    assert len(chunks) == 1 and chunks[0].content == want
    assert chunks[0].usage_metadata["output_tokens"] == 10
    achunks = [c async for c in llm.astream("the plot")]
    assert achunks[0].content == want
    assert [m.content for m in await llm.abatch(["the plot", "the plot"])] == [want, want]


def test_beta_one_with_the_self_pair_equals_prompting() -> None:
    system = "write very positive reviews"
    guided = ivg(
        guidance="token",
        beta=1.0,
        guide_system_prompt=system,
        max_tokens=12,
        **NO_REPETITION_CONTROL,
    )
    prompted = ivg(guidance="none", max_tokens=12, **NO_REPETITION_CONTROL)
    a = guided.invoke([HumanMessage("this movie")]).content
    b = prompted.invoke([SystemMessage(system), HumanMessage("this movie")]).content
    assert a == b


def test_one_small_model_as_both_sides_with_a_system_prompt_is_the_tuning_free_pair() -> None:
    system = "write very positive reviews"
    pair = ivg(
        guidance="token",
        beta=1.0,
        tuned_model=MODEL,
        reference_model=MODEL,
        guide_system_prompt=system,
        max_tokens=12,
        **NO_REPETITION_CONTROL,
    )
    prompted = ivg(guidance="none", max_tokens=12, **NO_REPETITION_CONTROL)
    a = pair.invoke([HumanMessage("this movie")])
    assert a.content == prompted.invoke([SystemMessage(system), HumanMessage("this movie")]).content
    assert a.response_metadata["ivg"]["guide_system_prompt"] == system


def test_an_identical_explicit_pair_changes_nothing() -> None:
    pair = ivg(guidance="token", tuned_model=MODEL, reference_model=MODEL, max_tokens=12)
    plain = ivg(guidance="none", max_tokens=12)
    assert pair.invoke("this movie").content == plain.invoke("this movie").content
    assert pair.invoke("this movie").response_metadata["ivg"]["models_per_token"] == 3


def test_explicit_pair_with_another_vocabulary_is_refused() -> None:
    other = tiny_tokenizer(list(reversed(WORDS)))
    llm = ivg(guidance="token", tuned_model=MODEL, reference_model=MODEL, guide_tokenizer=other)
    with pytest.raises(ConfigError, match="chunk-level guidance"):
        llm.invoke("this movie")
    # chunk-level guidance reads text, so it does not care
    assert (
        ivg(guidance="chunk", tuned_model=MODEL, reference_model=MODEL, guide_tokenizer=other)
        .invoke("x")
        .content
    )


def test_implicit_chunk_value_runs_the_guide_streams_without_token_guidance() -> None:
    llm = ivg(guidance="chunk", value=ImplicitValue(1.0))
    trace = llm.invoke("this movie").response_metadata["ivg"]
    assert trace["models_per_token"] == 2 and trace["beta"] is None
    assert trace["value"] == "implicit(beta=1)" and any(
        s != 0 for s in trace["chunks"][0]["scores"]
    )
    plain = ivg(guidance="none").invoke("this movie").content
    assert (
        ivg(guidance="chunk", value=ImplicitValue(1.0), beam_width=1, successors_per_beam=1)
        .invoke("this movie")
        .content
        == plain
    )


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"beam_width": 0}, "beam_width"),
        ({"chunk_tokens": 0}, "chunk_tokens"),
        ({"top_p": 1.5}, "top_p"),
        ({"temperature": -1}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"goal": {"sentiment": 7}}, "outside"),
        ({"goal": {"politeness": 2}}, "unknown objective"),
        ({"tuned_model": MODEL}, "reference_model"),
    ],
)
def test_bad_settings_raise_config_error(kw: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        ivg(**kw)


def test_chunk_guidance_without_goal_is_a_clear_error() -> None:
    llm = IVGChatModel(hf_model=MODEL, tokenizer=TOK, guidance="chunk", max_tokens=4)
    with pytest.raises(ConfigError, match="goal"):
        llm.invoke("x")
    assert (
        IVGChatModel(hf_model=MODEL, tokenizer=TOK, guidance="none", max_tokens=4, seed=1)
        .invoke("x")
        .content
    )


def test_greedy_stop_and_identifying_params() -> None:
    llm = ivg(guidance="none", temperature=0.0)
    assert llm.invoke("x", seed=1).content == llm.invoke("x", seed=2).content
    text = llm.invoke("x").content
    cut = text.split()[2]
    msg = llm.invoke("x", stop=[cut])
    assert (
        msg.content == text[: text.index(cut)] and msg.response_metadata["finish_reason"] == "stop"
    )
    assert llm._identifying_params["guidance"] == "none" and llm._llm_type == "hia-ivg"


def test_works_as_the_response_model_inside_another_wrapper() -> None:
    from hia_chain.aligned import AlignedChatModel

    inner = ivg(guidance="both", max_tokens=8)
    outer = AlignedChatModel(model=inner, goal={"sentiment": 4}, budget=2, seed=0)
    msg = outer.invoke("this movie")
    assert msg.content and msg.response_metadata["hia"]["calls"] == 2


# -- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch):
    import hia_chain.local.embedded as embedded

    monkeypatch.setattr(embedded, "load_embedded", lambda path=None: (MODEL, TOK))
    return lambda *argv: cli_main(list(argv))


def test_cli_json(cli, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli("ivg", "this movie", "--goal", "sentiment=4", "--guidance", "both", "--beam-width", "2",
               "--successors", "2", "--chunk-length", "3", "--beta", "2", "--max-tokens", "6",
               "--seed", "0", "--json")  # fmt: skip
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"text", "scores", "guidance", "new_tokens", "seconds"} <= set(out)
    assert (
        out["guidance"] == "both" and out["new_tokens"] == 6 and set(out["scores"]) == {"sentiment"}
    )
    assert -1 <= out["reward"] <= 0


def test_cli_without_goal_steers_toward_the_default_goal(cli, capsys) -> None:
    """`hia-chain ivg PROMPT` alone works: chunk and token guidance toward sentiment 4."""
    assert cli("ivg", "this movie", "--max-tokens", "4", "--seed", "1") == 0
    captured = capsys.readouterr()
    assert captured.out.strip() and "[both]" in captured.err and "sentiment" in captured.err


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--goal", "sentiment"], "NAME=NUMBER"),
        (["--goal", "politeness=2"], "unknown objective"),
        (["--goal", "sentiment=9"], "outside"),
        (["--goal", "sentiment=4", "--beam-width", "0"], "beam_width"),
        (["--goal", "sentiment=4", "--chunk-length", "-1"], "chunk-length"),
    ],
)
def test_cli_errors_are_one_line_and_non_zero(cli, capsys, argv: list[str], match: str) -> None:
    assert cli("ivg", "x", "--max-tokens", "2", *argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and err.startswith("hia-chain: error:")


def test_cli_rejects_unknown_guidance(cli) -> None:
    with pytest.raises(SystemExit) as exc:
        cli("ivg", "x", "--guidance", "sideways")
    assert exc.value.code == 2

"""LocalChatModel on a tiny random model: batching, streaming, stop strings and seeds.

Why: batching is what makes a round of HIA calls on a local model cost one forward pass per
token instead of K; a stream must join up to exactly what ``invoke`` returns; a seed must
repeat an answer without reseeding torch for the rest of the process, and a call must not
change the tokenizer the caller shares with other code.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from hia_chain.errors import ConfigError  # noqa: E402
from hia_chain.local import LocalChatModel  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model_and_tokenizer  # noqa: E402


def local(**kw: Any) -> LocalChatModel:
    model, tok = tiny_model_and_tokenizer()
    kw.setdefault("max_tokens", 8)
    return LocalChatModel(hf_model=model, tokenizer=tok, model_name="tiny", **kw)


def count_prefills(llm: LocalChatModel, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Rows of every prompt-encoding forward pass (one per decoded batch)."""
    rows: list[int] = []
    real = llm.hf_model.forward

    @functools.wraps(real)
    def counting(*args: Any, **kw: Any) -> Any:
        if kw.get("cache", kw.get("past_key_values")) is None:
            rows.append(int(kw["input_ids"].shape[0]))
        return real(*args, **kw)

    monkeypatch.setattr(llm.hf_model, "forward", counting)
    return rows


@pytest.mark.timeout(60)
def test_stream_ends_and_matches_invoke_at_temperature_zero() -> None:
    llm = local(temperature=0)
    want = llm.invoke("the movie").content
    chunks = list(llm.stream("the movie"))
    assert "".join(c.text for c in chunks) == want
    last = chunks[-1]
    assert last.chunk_position == "last" and last.usage_metadata["output_tokens"] > 0


@pytest.mark.timeout(60)
def test_a_seeded_sampled_stream_equals_the_seeded_invoke() -> None:
    llm = local(temperature=1.0, max_tokens=12)
    want = llm.invoke("the plot", seed=3)
    chunks = list(llm.stream("the plot", seed=3))
    assert "".join(c.text for c in chunks) == want.content
    assert chunks[-1].usage_metadata == want.usage_metadata


def test_a_stop_string_cuts_invoke_and_stream_alike_and_ends_decoding() -> None:
    llm = local(temperature=0, max_tokens=12)
    full = llm.invoke("the movie")
    words = full.content.split()
    assert len(words) > 3, full.content
    stop = f"{words[2]} {words[3]}"  # spans two tokens: the stream must hold the first back
    cut = llm.invoke("the movie", stop=[stop])
    assert cut.content == full.content[: full.content.index(stop)]
    assert cut.response_metadata["finish_reason"] == "stop"
    assert full.usage_metadata["output_tokens"] == 12  # the unstopped answer ran to the cap
    assert cut.usage_metadata["output_tokens"] < 12  # decoding stopped at the stop string
    streamed = list(llm.stream("the movie", stop=[stop]))
    assert "".join(c.text for c in streamed) == cut.content
    assert streamed[-1].response_metadata["finish_reason"] == "stop"


def test_seeds_repeat_answers_without_touching_torchs_global_random_state() -> None:
    llm = local(temperature=1.0, max_tokens=12)
    state = torch.get_rng_state()
    first = llm.invoke("the plot", seed=1).content
    assert llm.invoke("the plot", seed=1).content == first
    assert {llm.invoke("the plot", seed=s).content for s in range(2, 6)} - {first}
    list(llm.stream("the plot", seed=1))
    llm.invoke("the plot")  # unseeded: a fresh generator, still not the global one
    assert torch.equal(torch.get_rng_state(), state)


def test_the_shared_tokenizer_is_never_modified() -> None:
    llm = local(temperature=0)
    tok = llm.tokenizer
    tok.padding_side = "right"
    tok.pad_token = None
    llm.batch(["the movie", "a film that was very good"])
    list(llm.stream("the movie"))
    assert tok.padding_side == "right" and tok.pad_token is None


def test_settings_are_checked_at_construction_and_per_call() -> None:
    with pytest.raises(ConfigError, match="top_p"):
        local(top_p=1.5)
    with pytest.raises(ConfigError, match="temperature"):
        local(temperature=-1)
    with pytest.raises(ConfigError, match="max_tokens"):
        local().invoke("x", max_tokens=0)
    short = local(temperature=0, max_tokens=12).invoke("the movie", max_tokens=2)
    assert short.usage_metadata["output_tokens"] <= 2


def test_a_model_error_reaches_the_stream_and_every_request_of_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = local(batch_window=0.05)

    def broken(*args: Any, **kw: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(llm.hf_model, "forward", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        list(llm.stream("the movie"))
    outs = llm.batch(["the movie", "the plot"], return_exceptions=True)
    assert [str(o) for o in outs] == ["out of memory", "out of memory"]


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_concurrent_calls_share_one_forward_batch(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = local(temperature=0, batch_window=0.05)
    prefills = count_prefills(llm, monkeypatch)
    prompts = ["the movie", "the plot", "a film"]
    outs = llm.batch(prompts) if api == "sync" else await llm.abatch(prompts)
    assert prefills == [3]
    assert [m.content for m in outs] == [llm.invoke(p).content for p in prompts]


async def test_calls_with_different_settings_run_in_separate_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    llm = local(temperature=0, batch_window=0.05)
    prefills = count_prefills(llm, monkeypatch)
    await asyncio.gather(
        llm.ainvoke("the movie"), llm.ainvoke("the plot"), llm.ainvoke("a film", temperature=0.5)
    )
    assert sorted(prefills) == [1, 2]


async def test_calls_differing_only_in_max_tokens_share_a_batch_each_with_its_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    llm = local(temperature=0, max_tokens=12, batch_window=0.05)
    alone = [llm.invoke("the movie", max_tokens=3), llm.invoke("the plot")]
    prefills = count_prefills(llm, monkeypatch)
    both = await asyncio.gather(llm.ainvoke("the movie", max_tokens=3), llm.ainvoke("the plot"))
    assert prefills == [2]  # one forward batch for the capped and the uncapped call
    assert [m.usage_metadata["output_tokens"] for m in both] == [3, 12]
    assert [m.response_metadata["finish_reason"] for m in both] == ["length", "length"]
    assert [m.content for m in both] == [m.content for m in alone]


class Overlap:
    """Wraps the model's forward pass: counts passes running at once, logs who ran each."""

    def __init__(self, llm: LocalChatModel, monkeypatch: pytest.MonkeyPatch) -> None:
        import threading

        self.guard, self.active, self.most = threading.Lock(), 0, 0
        self.log: list[str] = []
        real = llm.hf_model.forward

        @functools.wraps(real)
        def watched(*args: Any, **kw: Any) -> Any:
            with self.guard:
                self.active += 1
                self.most = max(self.most, self.active)
                self.log.append(threading.current_thread().name)
            try:
                time.sleep(0.005)  # widen the window two decode loops would share
                return real(*args, **kw)
            finally:
                with self.guard:
                    self.active -= 1

        monkeypatch.setattr(llm.hf_model, "forward", watched)


@pytest.mark.timeout(60)
def test_a_stream_never_decodes_beside_a_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    llm = local(temperature=0, max_tokens=12)
    want = llm.invoke("the movie").content
    watch = Overlap(llm, monkeypatch)
    batch: list[str] = []
    worker = threading.Thread(
        target=lambda: batch.extend(m.content for m in llm.batch(["the plot", "a film"]))
    )
    pieces = []
    for chunk in llm.stream("the movie"):  # a slow reader: the batch runs meanwhile
        pieces.append(chunk.text)
        if len(pieces) == 1:
            worker.start()
        time.sleep(0.02)
    worker.join()
    assert "".join(pieces) == want and len(batch) == 2
    assert watch.most == 1  # never two forward passes at once
    # the stream decodes on this thread, the batch on LangChain's pool threads
    stream_passes = [i for i, name in enumerate(watch.log) if name == "MainThread"]
    batch_passes = [i for i, name in enumerate(watch.log) if name != "MainThread"]
    assert stream_passes[0] < batch_passes[0] < stream_passes[-1]  # and yet interleaved


@pytest.mark.timeout(60)
def test_a_reader_may_call_the_model_between_pieces() -> None:
    llm = local(temperature=0, max_tokens=6)
    want = llm.invoke("the movie").content
    pieces = []
    for chunk in llm.stream("the movie"):
        pieces.append(chunk.text)
        assert llm.invoke("the plot").content  # would deadlock if the stream held the engine
    assert "".join(pieces) == want


@pytest.mark.timeout(60)
async def test_a_sync_call_on_the_event_loop_thread_does_not_wait_for_an_async_batch() -> None:
    import asyncio

    llm = local(temperature=0)
    pending = asyncio.create_task(llm.ainvoke("the movie"))
    await asyncio.sleep(0)  # the async call now leads a batch window on this loop
    assert llm.invoke("the plot").content == llm.invoke("the plot").content
    assert (await pending).content

"""LocalChatModel control flow on a tiny random model: streaming ends, errors surface, and
concurrent sync or async calls are batched into one ``generate``.

Why: a stream whose worker thread dies, or that waits for a second end-of-stream signal,
hangs the caller forever; batching is what makes a round of HIA calls on a local model cost
one forward pass per token instead of K.
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("torch")

from hia_chain.local import LocalChatModel  # noqa: E402
from tests.unit_tests.local._tiny_ivg import tiny_model_and_tokenizer  # noqa: E402


def local(**kw: Any) -> LocalChatModel:
    model, tok = tiny_model_and_tokenizer()
    kw.setdefault("max_tokens", 8)
    return LocalChatModel(hf_model=model, tokenizer=tok, model_name="tiny", **kw)


@pytest.mark.timeout(60)
def test_stream_ends_and_matches_invoke_at_temperature_zero() -> None:
    llm = local(temperature=0)
    want = llm.invoke("the movie").content
    chunks = list(llm.stream("the movie"))
    assert "".join(c.text for c in chunks) == want
    last = chunks[-1]
    assert last.chunk_position == "last" and last.usage_metadata["output_tokens"] > 0


@pytest.mark.timeout(60)
def test_stream_surfaces_a_generation_error_instead_of_hanging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    llm = local()

    def broken(**kw: Any) -> Any:
        raise RuntimeError("out of memory")

    monkeypatch.setattr(llm.hf_model, "generate", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        list(llm.stream("the movie"))


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_concurrent_calls_share_one_generate(
    api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm = local(temperature=0, batch_window=0.05)
    batches: list[int] = []
    real = llm.hf_model.generate

    def counting(**kw: Any) -> Any:
        batches.append(int(kw["input_ids"].shape[0]))
        return real(**kw)

    monkeypatch.setattr(llm.hf_model, "generate", counting)
    prompts = ["the movie", "the plot", "a film"]
    outs = llm.batch(prompts) if api == "sync" else await llm.abatch(prompts)
    assert batches == [3]
    assert [m.content for m in outs] == [llm.invoke(p).content for p in prompts]


@pytest.mark.timeout(60)
async def test_a_sync_call_on_the_event_loop_thread_does_not_wait_for_an_async_batch() -> None:
    import asyncio

    llm = local(temperature=0)
    pending = asyncio.create_task(llm.ainvoke("the movie"))
    await asyncio.sleep(0)  # the async call now leads a batch window on this loop
    assert llm.invoke("the plot").content == llm.invoke("the plot").content
    assert (await pending).content

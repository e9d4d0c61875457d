"""The shipped fake chat model behaves like a provider: it answers from its function, counts
and records calls, reports usage and finish reasons, fails where told and overlaps calls."""

from __future__ import annotations

import anyio
import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from hia_chain.testing import FakeChatModel, instruction_following


def test_answers_from_the_prompt_and_the_call_index_and_records_each_call() -> None:
    model = FakeChatModel(answer=lambda prompt, i: f"{i}: {prompt.upper()}\nsecond line")
    first = model.invoke([SystemMessage("be nice"), HumanMessage("hi there")], seed=3)
    second = model.invoke("again")
    assert [first.text, second.text] == ["0: HI THERE\nsecond line", "1: AGAIN\nsecond line"]
    assert model.calls == 2 and model.prompts == ["hi there", "again"]
    assert model.call_kwargs[0]["seed"] == 3
    assert [len(m) for m in model.messages_seen] == [2, 1]


def test_reports_usage_in_words_and_a_finish_reason() -> None:
    reply = FakeChatModel(answer=lambda p, i: "one two three").invoke("a b")
    assert reply.usage_metadata == {"input_tokens": 2, "output_tokens": 3, "total_tokens": 5}
    assert reply.response_metadata["finish_reason"] == "stop"
    assert reply.response_metadata["model_name"] == "fake-chat-model"
    assert FakeChatModel(report_usage=False).invoke("a").usage_metadata is None


def test_truncates_at_the_call_cap_first_then_its_own_only_when_asked() -> None:
    long = FakeChatModel(answer=lambda p, i: "w " * 10, max_tokens=4, truncate=True)
    cut = long.invoke("x", max_tokens=3)
    assert cut.text == "w w w" and cut.response_metadata["finish_reason"] == "length"
    assert long.invoke("x").usage_metadata["output_tokens"] == 4  # type: ignore[index]
    assert len(FakeChatModel(answer=lambda p, i: "w " * 10).invoke("x", max_tokens=3).text) > 5


def test_fails_on_the_chosen_calls_after_counting_them() -> None:
    model = FakeChatModel(fail_on={1: ConnectionError("reset")})
    model.invoke("a")
    with pytest.raises(ConnectionError, match="reset"):
        model.invoke("b")
    model.invoke("c")
    assert model.calls == 3 and model.prompts == ["a", "b", "c"]


def test_an_answer_that_raises_fails_the_call() -> None:
    def answer(prompt: str, index: int) -> str:
        raise ValueError(f"no answer to {prompt}")

    with pytest.raises(ValueError, match="no answer to q"):
        FakeChatModel(answer=answer).invoke("q")


async def test_async_calls_overlap_for_their_latency() -> None:
    model = FakeChatModel(latency=0.05)
    with anyio.fail_after(2):
        replies = await model.abatch(["a", "b", "c"], config={"max_concurrency": 3})
    assert len(replies) == 3 and model.max_in_flight == 3 and model.calls == 3


def test_instruction_following_answers_obey_length_instructions_and_are_seeded() -> None:
    def lengths(seed: int) -> list[int]:
        answer = instruction_following(seed)
        prompts = ["Owls. Answer in one short sentence.", "Owls.", "Owls. Explain in detail."]
        return [len(answer(p, i).split()) for i, p in enumerate(prompts)]

    short, plain, detailed = lengths(0)
    assert short < plain < detailed
    assert lengths(0) == lengths(0)
    stretched = instruction_following(0, stretch=3.0)("Owls. Answer briefly.", 0)
    assert len(stretched.split()) > len(
        instruction_following(0)("Owls. Answer briefly.", 0).split()
    )

"""Token caps on non-ASCII text with the embedded model's own tokenizer (issue 9, item 1),
and prompts longer than the response model's context window (item 12)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from hia_chain import AlignedChatModel
from hia_chain.budget import Budget, Price
from hia_chain.context import estimate_tokens
from hia_chain.errors import BudgetExceededError, ConfigError

CHINESE = "人工智能正在深刻地改变我们的生活方式、工作方式以及彼此沟通交流的方式。" * 8
THAI = "ปัญญาประดิษฐ์กำลังเปลี่ยนแปลงวิถีชีวิตและการทำงานของเราอย่างลึกซึ้ง " * 5
EMOJI = "🙂🚀🌍🎉🔥👍🏽🍕🐍🌈💡" * 9
SCRIPTS = {"chinese": CHINESE, "thai": THAI, "emoji": EMOJI}


@pytest.fixture(scope="module")
def tokenizer(embedded_path: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(embedded_path), local_files_only=True)


def chat_tokens(tokenizer: Any, text: str) -> int:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    return len(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_the_bound_covers_the_real_tokenizer(tokenizer: Any, script: str) -> None:
    text = SCRIPTS[script]
    real = chat_tokens(tokenizer, text)
    assert real > len(text) or script == "thai"  # more tokens than characters (old bound)
    assert real + 16 <= estimate_tokens(text, 16)  # type: ignore[operator]


class TokenizerEcho(BaseChatModel):
    """Answers ``max_tokens`` words and reports usage counted by the real tokenizer."""

    tokenizer: Any
    max_tokens: int = 16

    @property
    def _llm_type(self) -> str:
        return "tokenizer-echo"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any
    ) -> ChatResult:
        prompt = messages[-1].text
        text = " ".join(["好"] * self.max_tokens)
        out = min(self.max_tokens, len(self.tokenizer(text)["input_ids"]))
        usage = {
            "input_tokens": chat_tokens(self.tokenizer, prompt),
            "output_tokens": out,
            "total_tokens": 0,
        }
        usage["total_tokens"] = usage["input_tokens"] + out
        msg = AIMessage(content=text, usage_metadata=usage)  # type: ignore[arg-type]
        return ChatResult(generations=[ChatGeneration(message=msg)])


@pytest.mark.parametrize("script", sorted(SCRIPTS))
async def test_300_concurrent_requests_never_overrun_token_or_cost_caps(
    tokenizer: Any, script: str
) -> None:
    """Old code: 300 Chinese requests overran a 20,000-token cap by 21%, a cost cap too."""
    prices = {"response": Price(input_per_million=1.0, output_per_million=4.0)}
    pool = Budget(tokens=20_000, cost=0.02, prices=prices)
    model = AlignedChatModel(
        model=TokenizerEcho(tokenizer=tokenizer), goal={"verbosity": 1}, shared_budget=pool
    )

    async def one(i: int) -> None:
        try:
            await model.ainvoke(f"{i} {SCRIPTS[script]}")
        except BudgetExceededError:
            pass

    async with anyio.create_task_group() as tg:
        for i in range(300):
            tg.start_soon(one, i)
    used = pool.usage()
    assert used.calls > 0
    assert used.total_tokens <= 20_000 and used.cost <= 0.02 + 1e-9


async def test_a_real_local_call_on_chinese_stays_under_its_cap(embedded_path: Path) -> None:
    """The issue's case: Budget(tokens=450), max_tokens=16, one Chinese prompt: no overrun."""
    from hia_chain.local import LocalChatModel

    llm = LocalChatModel(model_path=str(embedded_path), max_tokens=16, temperature=0)
    small = Budget(tokens=450)
    model = AlignedChatModel(model=llm, goal={"verbosity": 1}, budget=1, shared_budget=small)
    with pytest.raises(BudgetExceededError):  # old code: ran, and settled 574 tokens
        await model.ainvoke(CHINESE[:279])
    assert small.usage().calls == 0
    roomy = Budget(tokens=1200)
    model = AlignedChatModel(model=llm, goal={"verbosity": 1}, budget=1, shared_budget=roomy)
    await model.ainvoke(CHINESE[:279])
    assert roomy.usage().calls == 1 and 0 < roomy.usage().total_tokens <= 1200


async def test_a_prompt_longer_than_the_context_window_is_refused_before_any_call(
    embedded_path: Path,
) -> None:
    """Item 12: a 20,000-word prompt to the embedded model (8,192-token window)."""
    from hia_chain.local import LocalChatModel

    pool = Budget(calls=5)
    llm = LocalChatModel(model_path=str(embedded_path), max_tokens=16)
    model = AlignedChatModel(model=llm, goal={"verbosity": 1}, shared_budget=pool)
    prompt = " ".join(["word"] * 20_000)
    with pytest.raises(ConfigError, match="context window of 8192 tokens"):
        await model.ainvoke(prompt)
    assert pool.usage().calls == 0 and pool.held() == 0

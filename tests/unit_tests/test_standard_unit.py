"""LangChain's standard unit suite (``langchain-tests`` 1.1.9) for the package's chat models.

Why: users drop :class:`~hia_chain.AlignedChatModel` and
:class:`~hia_chain.local.LocalChatModel` into code written for any chat model, so both must
behave like one: accept the standard init parameters, report LangSmith params, bind tools and
build structured output. The suite pins what "like one" means.

The inner model of ``AlignedChatModel`` is a fake (no network): :class:`ToolFakeChatModel`
below supports ``bind_tools``, so the tool and structured-output tests exercise the real
delegation path. ``LocalChatModel`` runs over a tiny random transformers model
(``tests/unit_tests/local/_tiny_ivg.py``), injected so nothing is loaded from disk or a hub.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.unit_tests import ChatModelUnitTests

from hia_chain.aligned import AlignedChatModel
from hia_chain.goals import Objective
from tests.unit_tests.fakes import WordCountScorer

__all__ = ["ToolFakeChatModel"]


class ToolFakeChatModel(BaseChatModel):
    """A fake provider model with ``bind_tools``, a model name and usage metadata.

    Without tools it answers ``answer(prompt)``; with tools bound it calls the first tool,
    with ``args(prompt)`` as arguments (so a test can make the arguments follow the prompt's
    instructions, as a real model's would).
    """

    model_name: str = "tool-fake"
    answer: Callable[[str], str] = lambda p: f"An answer to: {p}"
    args: Callable[[str], dict[str, Any]] = lambda p: {"a": 1, "b": 2}
    temperature: float | None = None
    max_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return "tool-fake"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind OpenAI-format tools, like most provider integrations do."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = next(m.text for m in reversed(messages) if isinstance(m, HumanMessage))
        tools = kwargs.get("tools") or []
        if tools:
            name = tools[0]["function"]["name"]
            args = self.args(prompt)
            text, calls = "", [{"name": name, "args": args, "id": f"call_{len(prompt)}"}]
            out_words = len(json.dumps(args).split())
        else:
            text, calls = self.answer(prompt), []
            out_words = len(text.split())
        in_words = sum(len(m.text.split()) for m in messages)
        message = AIMessage(
            content=text,
            tool_calls=calls,
            usage_metadata={
                "input_tokens": in_words,
                "output_tokens": out_words,
                "total_tokens": in_words + out_words,
            },
            response_metadata={"model_name": self.model_name},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


class TestAlignedChatModelStandard(ChatModelUnitTests):
    """``AlignedChatModel`` over a fake provider model.

    Skipped by the suite itself, and why:

    * ``test_init_from_env``: no ``init_from_env_params``. The aligned model holds no
      credentials; the inner model reads its own environment.
    * ``test_serdes``: ``is_lc_serializable()`` is False. The model's value is in live
      objects (an optimizer, scorers, a heuristic with learned state, a shared budget) that
      LangChain's ``dumpd``/``load`` cannot rebuild; see ``test_ecosystem.py``.
    """

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return AlignedChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        # A fresh inner model per construction, so no test sees another's calls.
        return {
            "model": ToolFakeChatModel(),
            "goal": {"verbosity": 1},
            "objectives": [Objective("verbosity")],
            "scorers": [WordCountScorer()],
            "budget": 1,
        }


# -- the local chat models (the [local] extra), over a tiny random model -------------------------


@functools.cache
def _tiny() -> tuple[Any, Any]:
    """The tiny random Llama and word-level chat tokenizer (built offline in milliseconds)."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.unit_tests.local._tiny_ivg import tiny_model_and_tokenizer

    return tiny_model_and_tokenizer()


_NO_MODEL_OVERRIDE = (
    "a local chat model runs the one set of weights it holds: a per-call `model=` cannot switch "
    "them, so reporting it as the traced model would misattribute the call"
)


class TestLocalChatModelStandard(ChatModelUnitTests):
    """``LocalChatModel`` over an injected tiny model (nothing loaded from disk or a hub).

    Skipped or expected to fail, and why:

    * ``test_init_from_env`` (skipped): a local model reads no credentials or endpoint from
      the environment.
    * ``test_serdes`` (skipped): not ``lc_serializable``: the weights are live objects.
    * ``test_standard_params_model_override`` (xfail, by design): see ``_NO_MODEL_OVERRIDE``;
      the suite allows overriding a standard test only as an xfail.
    * Tool and structured-output tests pass vacuously: no ``bind_tools`` (small local chat
      models do not call tools reliably), so the suite's ``has_tool_calling`` is False.
    """

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        pytest.importorskip("torch")
        from hia_chain.local.chat_model import LocalChatModel

        return LocalChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        model, tokenizer = _tiny()
        return {"hf_model": model, "tokenizer": tokenizer, "model_name": "tiny-llama"}

    @pytest.mark.xfail(strict=True, reason=_NO_MODEL_OVERRIDE)
    def test_standard_params_model_override(self, model: BaseChatModel) -> None:
        super().test_standard_params_model_override(model)


class TestIVGChatModelStandard(ChatModelUnitTests):
    """``IVGChatModel`` (value-guided local decoding) over an injected tiny model.

    Skipped or expected to fail for the same reasons as :class:`TestLocalChatModelStandard`.
    """

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        pytest.importorskip("torch")
        from hia_chain.local.ivg_chat_model import IVGChatModel

        return IVGChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        model, tokenizer = _tiny()
        return {
            "hf_model": model,
            "tokenizer": tokenizer,
            "model_name": "tiny-llama",
            "goal": {"sentiment": 4},
        }

    @pytest.mark.xfail(strict=True, reason=_NO_MODEL_OVERRIDE)
    def test_standard_params_model_override(self, model: BaseChatModel) -> None:
        super().test_standard_params_model_override(model)

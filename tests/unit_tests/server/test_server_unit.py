"""The server's pieces without sockets: the keys file, the error mapping, the configuration."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hia_chain.budget import completion_usage
from hia_chain.errors import BudgetExceededError, ConfigError, StoreUnavailableError
from hia_chain.factory import DEFAULT_HEURISTIC
from hia_chain.scorers.instruction import InstructionHeuristic
from hia_chain.scorers.learned import LearnedHeuristic
from hia_chain.server.align import Aligner, _with_system
from hia_chain.server.config import ServerConfig
from hia_chain.server.errors import from_exception
from hia_chain.server.keys import KeyRing
from hia_chain.server.launch import serve
from hia_chain.server.upstream import LocalUpstream
from hia_chain.testing import FakeChatModel


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(data))
    return path


def test_keys_are_looked_up_by_digest_and_periods_parsed(tmp_path: Path) -> None:
    digest = hashlib.sha256(b"sk-hidden").hexdigest()
    ring = KeyRing.load(
        write(
            tmp_path,
            {
                "keys": [
                    {"name": "a", "key": "sk-a", "period": "day"},
                    {"name": "b", "key_sha256": digest},
                ]
            },
        )
    )
    assert ring.lookup("sk-a").period == 86400  # type: ignore[union-attr]
    assert ring.lookup("sk-hidden").name == "b"  # type: ignore[union-attr]
    assert ring.lookup("sk-other") is None and ring.lookup(None) is None
    assert "sk-a" not in repr(ring.specs[0])  # the secret is a SecretStr


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"keys": [{"name": "a", "key": "x", "calls": -1}]}, r"keys\.0\.calls"),
        ({"keys": [{"name": "a", "key": "x", "period": "fortnight"}]}, r"keys\.0\.period"),
        ({"keys": [{"name": "a"}]}, "exactly one of `key` and `key_sha256`"),
        ({"keys": [{"name": "a", "key": "x"}, {"name": "a", "key": "y"}]}, "used twice"),
        ({"keys": [{"name": "a", "key": "x", "cost": 1.0}]}, "needs a `price`"),
        ({"keys": [{"name": "a", "key": "x", "searches": ["dfs"]}]}, r"keys\.0\.searches"),
    ],
)
def test_bad_keys_files_name_the_entry(tmp_path: Path, data: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        KeyRing.load(write(tmp_path, data))


def test_keys_file_not_json(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{nope")
    with pytest.raises(ConfigError, match="not JSON"):
        KeyRing.load(path)


def test_errors_map_to_openai_statuses() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    err = from_exception(BudgetExceededError("dry"), retry_after=12.3)
    assert (err.status, err.headers["Retry-After"], err.code) == (429, "12", "budget_exhausted")
    assert from_exception(ConfigError("`goal` names unknown objective 'x'")).param == "hia.goal"
    assert from_exception(openai.APIConnectionError(request=request)).status == 502
    assert from_exception(openai.APITimeoutError(request=request)).status == 504
    assert from_exception(TimeoutError("slow")).status == 504
    assert from_exception(StoreUnavailableError("redis down")).status == 503
    unexpected = from_exception(KeyError("secret detail"))
    assert unexpected.status == 500 and "secret detail" not in unexpected.message
    response = httpx.Response(400, request=request, json={"error": {"message": "bad tools"}})
    bad = openai.BadRequestError("bad", response=response, body={"error": {"message": "bad tools"}})
    assert (from_exception(bad).status, "bad tools" in from_exception(bad).message) == (400, True)


def test_config_and_serve_refuse_unsafe_setups(tmp_path: Path) -> None:
    pytest.importorskip("uvicorn", reason="serving needs the [server] extra")
    with pytest.raises(ValueError, match="needs --upstream-model"):
        ServerConfig(upstream_base_url="http://127.0.0.1:1/v1")
    keys = write(tmp_path, {"keys": [{"name": "a", "key": "x", "calls": 5}]})
    with pytest.raises(ConfigError, match="needs --redis-url"):
        serve(ServerConfig(workers=4, keys_path=str(keys)))


def test_the_server_heuristic_is_shared_unless_it_learns_per_user(tmp_path: Path) -> None:
    upstream = LocalUpstream(8, llm=FakeChatModel())
    shared = Aligner(ServerConfig(), upstream)
    assert ServerConfig().heuristic_kind == DEFAULT_HEURISTIC == "instruction"
    assert shared.heuristic("key/ana") is shared.heuristic("key/bo")
    assert isinstance(shared.heuristic("key/ana"), InstructionHeuristic)
    per_user = Aligner(ServerConfig(heuristic="learned"), upstream)
    ana, bo = per_user.heuristic("key/ana"), per_user.heuristic("key/bo")
    assert (
        isinstance(ana, LearnedHeuristic) and ana is not bo and ana is per_user.heuristic("key/ana")
    )
    state = tmp_path / "state.json"
    LearnedHeuristic().save(state)
    assert ServerConfig(heuristic_state=str(state)).heuristic_kind == "learned"
    with pytest.raises(ValueError, match="warm-starts the learned heuristic, not 'instruction'"):
        ServerConfig(heuristic="instruction", heuristic_state=str(state))


async def test_the_in_process_upstream_never_invents_usage() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "Tell me about owls."}]}
    reported = await LocalUpstream(8, llm=FakeChatModel(answer=lambda p, i: "Owls hoot.")).complete(
        body
    )
    assert reported["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert completion_usage(reported) == (4, 2)
    silent = await LocalUpstream(8, llm=FakeChatModel(report_usage=False)).complete(body)
    assert "usage" not in silent and completion_usage(silent) == (None, None)


def test_a_candidates_system_instruction_joins_the_callers_own() -> None:
    user = {"role": "user", "content": "Q?"}
    assert _with_system([user], "Be brief.") == [{"role": "system", "content": "Be brief."}, user]
    own = {"role": "developer", "content": "You are terse."}
    assert _with_system([own, user], "Be brief.")[0] == {
        "role": "developer",
        "content": "You are terse.\n\nBe brief.",
    }
    parts = {"role": "system", "content": [{"type": "text", "text": "A."}]}
    assert _with_system([parts, user], "B.")[0]["content"][-1] == {"type": "text", "text": "B."}


def test_a_capped_completion_is_cut_back_to_its_last_whole_sentence() -> None:
    from hia_chain.server.align import _cut_capped

    def completion(content: str, finish: str) -> dict[str, Any]:
        message = {"role": "assistant", "content": content}
        return {"choices": [{"index": 0, "message": message, "finish_reason": finish}]}

    cut = _cut_capped(completion("Tides follow the moon. They rise and", "length"))
    assert cut["choices"][0]["message"]["content"] == "Tides follow the moon."
    assert cut["choices"][0]["finish_reason"] == "length"  # the provider's word, kept
    whole = completion("Tides follow the moon. They rise and", "stop")
    assert _cut_capped(whole) == whole

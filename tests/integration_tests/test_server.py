"""`hia-chain serve` under uvicorn on 127.0.0.1, called with the real `openai` SDK, over a
counting fake upstream (a real HTTP server): what reached the upstream is compared with what
the response and the trace say was spent.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from hia_chain.bench.fake_upstream import MODEL, FakeUpstream
from hia_chain.server import running_server

pytestmark = pytest.mark.integration

KEYS = {
    "keys": [
        {"name": "ana", "key": "sk-ana-secret", "max_budget": 4},
        {"name": "tiny", "key": "sk-tiny-secret", "calls": 3, "period": "day"},
        {"name": "bononly", "key": "sk-bon-secret", "searches": ["bon"]},
    ]
}
GOAL = {"goal": {"verbosity": 1}, "budget": 3}
ASK = [{"role": "user", "content": "Why is the sky blue?"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="module")
def server(upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    keys = tmp_path_factory.mktemp("keys") / "keys.json"
    keys.write_text(json.dumps(KEYS))
    args = ["--upstream-base-url", upstream.base_url, "--upstream-model", MODEL]
    args += ["--keys", str(keys), "--upstream-timeout", "2", "--max-retries", "0"]
    with running_server(args) as s:
        yield s


@pytest.fixture
def up(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.delay, upstream.status = 0.0, None


def client(server: Any, key: str = "sk-ana-secret") -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)


def test_aligned_request_spends_its_budget_and_reports_it(server: Any, up: FakeUpstream) -> None:
    r = client(server).chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=64, temperature=0.3, extra_body={"hia": GOAL}
    )
    trace = r.model_extra["hia"]
    assert up.received == 3 == trace["calls"] == trace["budget"]
    assert r.choices[0].message.content == trace["candidates"][trace["best"]]["response"]
    # usage is the sum over every response call, as the upstream reported it
    assert r.usage.completion_tokens == trace["usage"]["response"]["output_tokens"]
    # the fake upstream bills words + 1 per answer
    billed = sum(c["response"].count(" ") + 2 for c in trace["candidates"] if c["sent"])
    assert r.usage.completion_tokens == billed
    sent = [c["prompt"] for c in trace["candidates"] if c["sent"]]
    assert sorted(b["messages"][-1]["content"] for b in up.bodies) == sorted(sent)
    assert all(b["temperature"] == 0.3 for b in up.bodies)
    # each call carries its candidate's output cap, never above the caller's bound
    caps = [c["max_tokens"] or 64 for c in trace["candidates"] if c["sent"]]
    assert sorted(b["max_tokens"] for b in up.bodies) == sorted(caps)
    assert max(caps) <= 64
    assert "hia" not in up.bodies[0]


async def test_async_sdk_streams_only_the_chosen_answer(server: Any, up: FakeUpstream) -> None:
    aclient = openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-ana-secret", max_retries=0)
    stream = await aclient.chat.completions.create(
        model=MODEL,
        messages=ASK,
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"hia": {"goal": {"verbosity": 3}, "budget": 2}},
    )
    text, trace, usage = "", None, None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        trace = (chunk.model_extra or {}).get("hia") or trace
        usage = chunk.usage or usage
    await aclient.close()
    assert trace is not None and trace["calls"] == 2 == up.received
    assert text == trace["candidates"][trace["best"]]["response"]
    assert (
        usage is not None and usage.completion_tokens == trace["usage"]["response"]["output_tokens"]
    )


def test_stream_carries_progress_as_sse_comments(server: Any, up: FakeUpstream) -> None:
    body = {"model": MODEL, "messages": ASK, "stream": True, "hia": GOAL}
    headers = {"Authorization": "Bearer sk-ana-secret"}
    with httpx.stream(
        "POST", f"{server.base_url}/chat/completions", json=body, headers=headers
    ) as r:
        lines = [line for line in r.iter_lines() if line]
    comments = [json.loads(line[len(": hia ") :]) for line in lines if line.startswith(": hia ")]
    assert [c["event"] for c in comments][:2] == ["hia_proposed", "hia_round"]
    assert comments[-1]["event"] == "hia_done" and comments[-1]["calls"] == 3
    assert lines[-1] == "data: [DONE]"


def test_passthrough_is_one_call_with_the_clients_parameters(server: Any, up: FakeUpstream) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    r = client(server).chat.completions.create(
        model=MODEL,
        messages=ASK,
        temperature=0.1,
        stop=["END"],
        tools=tools,
        tool_choice="required",
        response_format={"type": "text"},
    )
    assert up.received == 1
    sent = up.bodies[0]
    assert sent["stop"] == ["END"] and sent["tools"] == tools and sent["tool_choice"] == "required"
    assert sent["response_format"] == {"type": "text"} and sent["temperature"] == 0.1
    assert r.choices[0].message.tool_calls[0].function.name == "lookup"
    assert r.model_extra.get("hia") is None


def test_sync_sdk_streams_a_passthrough(server: Any, up: FakeUpstream) -> None:
    chunks = list(client(server).chat.completions.create(model=MODEL, messages=ASK, stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("done.") and up.received == 1
    assert all(c.usage is None for c in chunks)  # not asked for: the usage chunk is not relayed


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL, "messages": "hello"}, "messages"),
        ({"model": MODEL, "messages": ASK, "temperature": "hot"}, "temperature"),
        (
            {"model": MODEL, "messages": ASK, "hia": {"goal": {"verbosity": 1}, "budget": 10**6}},
            "hia.budget",
        ),
        ({"model": MODEL, "messages": ASK, "hia": {"goal": {"wit": 3}}}, "hia.goal"),
        ({"model": MODEL, "messages": ASK, "hia": {"goal": {"verbosity": 9}}}, "hia.goal"),
        (
            {"model": MODEL, "messages": ASK, "hia": {"goal": {"verbosity": 1}, "budjet": 2}},
            "hia.budjet",
        ),
        ({"model": MODEL, "messages": ASK, "hia": {}}, "hia.goal"),
        (
            {"model": MODEL, "messages": ASK, "hia": {"goal": {"verbosity": 1}, "reward": "l2"}},
            "hia.reward",
        ),
    ],
)
def test_bad_bodies_are_400_naming_the_field(
    server: Any, up: FakeUpstream, body: dict[str, Any], param: str
) -> None:
    r = httpx.post(
        f"{server.base_url}/chat/completions",
        json=body,
        headers={"Authorization": "Bearer sk-ana-secret"},
    )
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["message"]
    assert up.received == 0


def test_malformed_json_and_unknown_model(server: Any, up: FakeUpstream) -> None:
    auth = {"Authorization": "Bearer sk-ana-secret", "Content-Type": "application/json"}
    r = httpx.post(
        f"{server.base_url}/chat/completions", content=b'{"model": "x", "mess', headers=auth
    )
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client(server).chat.completions.create(model="gpt-9", messages=ASK)
    assert up.received == 0


def test_keys_unknown_401_and_settings_the_key_may_not_use(server: Any, up: FakeUpstream) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        client(server, "sk-nobody").chat.completions.create(model=MODEL, messages=ASK)
    assert "sk-nobody" not in str(info.value)
    with pytest.raises(openai.PermissionDeniedError, match="hia.search"):
        client(server, "sk-bon-secret").chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"hia": {**GOAL, "search": "greedy"}}
        )
    with pytest.raises(openai.BadRequestError, match="above the most this key"):
        client(server).chat.completions.create(
            model=MODEL, messages=ASK, extra_body={"hia": {**GOAL, "budget": 5}}
        )
    assert up.received == 0
    assert "sk-" not in server.log_tail(100_000)  # keys never reach the log


async def test_a_capped_key_never_overspends_under_concurrency(
    server: Any, up: FakeUpstream
) -> None:
    headers = {"Authorization": "Bearer sk-tiny-secret"}
    async with httpx.AsyncClient(timeout=30) as http:
        replies = await asyncio.gather(
            *[
                http.post(
                    f"{server.base_url}/chat/completions",
                    json={
                        "model": MODEL,
                        "messages": ASK,
                        "hia": {"goal": {"verbosity": 1}, "budget": 2},
                    }
                    if i % 2
                    else {"model": MODEL, "messages": ASK},
                    headers=headers,
                )
                for i in range(20)
            ]
        )
    statuses = [r.status_code for r in replies]
    assert up.received == 3  # the key's cap, whatever the mix of aligned and passthrough
    spent = sum(r.json().get("hia", {}).get("calls", 1) for r in replies if r.status_code == 200)
    assert spent == 3
    limited = [r for r in replies if r.status_code == 429]
    assert limited and set(statuses) <= {200, 429}
    assert 0 < int(limited[0].headers["retry-after"]) <= 86400
    assert limited[0].json()["error"]["code"] == "budget_exhausted"
    with pytest.raises(openai.RateLimitError):
        client(server, "sk-tiny-secret").chat.completions.create(model=MODEL, messages=ASK)
    metrics = httpx.get(server.base_url[: -len("/v1")] + "/metrics", headers=headers).text
    assert 'hia_budget_calls_left{key="tiny"} 0' in metrics


def test_upstream_timeout_504_and_failure_502(server: Any, up: FakeUpstream) -> None:
    up.delay = 3.0  # the server's --upstream-timeout is 2 s
    with pytest.raises(openai.APIStatusError) as info:
        client(server).chat.completions.create(model=MODEL, messages=ASK, extra_body={"hia": GOAL})
    assert info.value.status_code == 504
    up.delay, up.status = 0.0, 500
    with pytest.raises(openai.APIStatusError) as info:
        client(server).chat.completions.create(model=MODEL, messages=ASK)
    assert info.value.status_code == 502 and "Traceback" not in info.value.response.text


def test_upstream_down_is_502(tmp_path: Path) -> None:
    with FakeUpstream() as gone:
        dead_url = gone.base_url
    with running_server(["--upstream-base-url", dead_url, "--upstream-model", MODEL]) as s:
        with pytest.raises(openai.APIStatusError) as info:
            client(s).chat.completions.create(model=MODEL, messages=ASK, extra_body={"hia": GOAL})
        assert info.value.status_code == 502
        models = client(s).models.list()
        assert [m.id for m in models.data] == [MODEL]
        assert httpx.get(s.base_url[: -len("/v1")] + "/health").json()["status"] == "ok"


def test_four_workers_share_a_redis_budget(redis_server: Any, tmp_path: Path) -> None:
    cap = 25
    keys = tmp_path / "keys.json"
    keys.write_text(
        json.dumps({"keys": [{"name": "team", "key": "sk-team", "calls": cap, "period": 3600}]})
    )
    with FakeUpstream() as upstream:
        args = [
            "--upstream-base-url",
            upstream.base_url,
            "--upstream-model",
            MODEL,
            "--keys",
            str(keys),
        ]
        args += ["--workers", "4", "--redis-url", redis_server.url, "--log-level", "warning"]
        with running_server(args) as s:

            async def fire() -> list[httpx.Response]:
                limits = httpx.Limits(max_connections=500)
                async with httpx.AsyncClient(timeout=60, limits=limits) as http:
                    return await asyncio.gather(
                        *[
                            http.post(
                                f"{s.base_url}/chat/completions",
                                json={"model": MODEL, "messages": ASK},
                                headers={"Authorization": "Bearer sk-team"},
                            )
                            for _ in range(500)
                        ]
                    )

            replies = asyncio.run(fire())
        statuses = [r.status_code for r in replies]
        assert upstream.received <= cap
        assert statuses.count(200) == upstream.received == cap
        assert statuses.count(429) == 500 - cap

"""The README's Serve examples (curl and the official `openai` npm package from Node) run as
written against `hia-chain serve` over a counting fake upstream, and the embedded model serves
the Python SDK with nothing else running.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from hia_chain.bench.fake_upstream import MODEL, FakeUpstream
from hia_chain.server import running_server

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"


def serve_section() -> str:
    text = README.read_text()
    start = text.index("## Serve")
    return text[start : text.index("\n## ", start + 1)]


def block(lang: str) -> str:
    found = re.findall(rf"```{lang}\n(.*?)```", serve_section(), re.S)
    assert found, f"no ```{lang} block in the README's Serve section"
    return found[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, FakeUpstream]]:
    keys = tmp_path_factory.mktemp("keys") / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": "ana", "key": "sk-ana"}]}))
    with FakeUpstream() as up:
        args = ["--upstream-base-url", up.base_url, "--upstream-model", MODEL, "--keys", str(keys)]
        with running_server(args) as server:
            yield server, up


def at(server: Any, code: str) -> str:
    return code.replace("http://127.0.0.1:8000", server.base_url[: -len("/v1")])


def test_readme_curl_example(served: tuple[Any, FakeUpstream]) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    server, up = served
    up.reset()
    out = subprocess.run(
        ["bash", "-c", at(server, block("bash"))], capture_output=True, text=True, timeout=60
    )
    reply = json.loads(out.stdout)
    assert reply["hia"]["calls"] == 2 == up.received
    assert (
        reply["choices"][0]["message"]["content"]
        == reply["hia"]["candidates"][reply["hia"]["best"]]["response"]
    )


def test_readme_node_example_with_the_official_openai_package(
    served: tuple[Any, FakeUpstream], tmp_path: Path
) -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node/npm are not installed")
    install = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--silent", "openai"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if install.returncode != 0:
        pytest.skip(f"npm could not install openai (no network?): {install.stderr[-300:]}")
    server, up = served
    up.reset()
    script = tmp_path / "client.mjs"
    script.write_text(at(server, block("js")))
    out = subprocess.run(
        ["node", str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith(" 2") and up.received == 2


def test_embedded_model_serves_the_python_sdk(embedded_path: Path) -> None:
    env = {"HIA_CHAIN_CACHE": str(embedded_path.parent), "OMP_NUM_THREADS": "1"}
    with running_server(env=env) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="any", max_retries=0)
        (model,) = [m.id for m in client.models.list().data]
        reply = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Name a colour."}],
            max_tokens=12,
            user="ana",
            extra_body={"hia": {"goal": {"verbosity": 1}, "budget": 2}},
        )
        trace = reply.model_extra["hia"]
        assert trace["calls"] == 2 and reply.choices[0].message.content
        assert reply.usage.completion_tokens == trace["usage"]["response"]["output_tokens"] > 0
        chunks = list(
            client.chat.completions.create(
                model=model,
                messages=[{"role": "user", "content": "Hi!"}],
                max_tokens=8,
                stream=True,
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()

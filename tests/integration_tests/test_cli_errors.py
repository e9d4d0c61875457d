"""``hia-chain`` runtime errors: one line on stderr naming the problem and the fix, documented
exit codes (2 bad input, 1 runtime, 130 interrupted). Issue 9, items 13 and 14."""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hia_chain.bench.fault_server import FaultServer
from hia_chain.cli import main


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


@pytest.fixture
def html_server() -> Iterator[str]:
    """A web server that is not an OpenAI-compatible API (answers HTML)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("content-length", 0)))
            body = b"<html><body>It works!</body></html>"
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def slow_server() -> Iterator[FaultServer]:
    """A fault server in its own thread and loop whose answers take 60 s."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def serve() -> None:
        async def main_() -> None:
            async with FaultServer(delay=60.0) as server:
                box["server"], box["loop"] = server, asyncio.get_running_loop()
                box["stop"] = asyncio.Event()
                ready.set()
                await box["stop"].wait()

        asyncio.run(main_())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(10)
    yield box["server"]
    box["loop"].call_soon_threadsafe(box["stop"].set)
    thread.join(5)


def test_closed_port_is_one_line_naming_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = "http://127.0.0.1:9/v1"
    code, err = run(["align", "Explain tides.", "--base-url", url, "--model", "m"], capsys)
    assert code == 1 and len(err) == 1 and url in err[0] and "--base-url" in err[0]


def test_a_server_that_is_not_openai_compatible(
    html_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = run(["align", "Explain tides.", "--base-url", html_server, "--model", "m"], capsys)
    assert code == 1 and len(err) == 1 and "not answer like an OpenAI-compatible API" in err[0]


def test_non_utf8_bytes_in_the_prompt_are_refused_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompt = os.fsdecode(b"Explain \xff tides.")  # what Python makes of non-UTF-8 argv bytes
    code, err = run(
        ["align", prompt, "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], capsys
    )
    assert code == 2 and len(err) == 1 and "not UTF-8" in err[0] and "0xff" in err[0]


@pytest.mark.parametrize(("module", "extra"), [("langchain_openai", "cli"), ("rich", "cli")])
def test_a_missing_extra_names_the_pip_command(
    module: str, extra: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)  # submodules imported earlier go too
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    monkeypatch.delitem(sys.modules, "hia_chain.cli.display", raising=False)  # re-imported
    code, err = run(["align", "Hi", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"], capsys)
    assert code == 1 and err == [
        f"hia-chain: error: the '{module}' package is missing; install the extra: "
        f"pip install 'hia-chain[{extra}]'"
    ]


def test_bad_numbers_are_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    """Item 14: ``--temperature nan`` is refused (exit 2), and so is a bad budget."""
    with pytest.raises(SystemExit) as exc:
        main(["align", "Hi", "--temperature", "nan"])
    assert exc.value.code == 2 and "finite" in capsys.readouterr().err
    code, err = run(
        ["align", "Hi", "--budget", "0", "--base-url", "http://x/v1", "--model", "m"], capsys
    )
    assert code == 2 and len(err) == 1 and "budget" in err[0]


def test_ctrl_c_stops_at_once_with_one_line(slow_server: FaultServer) -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "hia_chain.cli", "align", "Explain tides.", "--base-url"]
    proc = subprocess.Popen(
        [*cmd, slow_server.base_url, "--model", "m", "--budget", "4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        # A runner started in the background (`make test &`, nohup) hands its children an
        # ignored SIGINT, as a shell does; a user's terminal does not.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    waited = time.monotonic()
    while slow_server.received == 0 and time.monotonic() - waited < 60:
        time.sleep(0.1)  # until the calls are in flight, waiting on the 60 s answers
    assert proc.poll() is None and slow_server.received > 0
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()  # never left running into the next test
    assert time.monotonic() - sent < 3  # old code: 39 s and an 81-line traceback
    assert proc.returncode == 130
    assert [line for line in err.splitlines() if line.strip()] == ["hia-chain: interrupted"]

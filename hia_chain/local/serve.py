"""Run a real OpenAI-compatible server (``transformers serve``) for a local model folder.

Used by the benchmark (the response model as a black box over HTTP) and by the integration
tests. Loopback only. The server gets its own torch thread count so it and an in-process
model do not fight over two cores (DESIGN §4).
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from hia_chain.errors import LocalExtraMissingError

__all__ = ["ServedModel", "free_port", "log_tail", "serve_model", "wait_until_healthy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServedModel:
    """A running server: where to reach it and what model name to ask for."""

    base_url: str
    """OpenAI-style base URL, e.g. ``http://127.0.0.1:8123/v1``."""
    model: str
    log_path: Path
    pid: int | None = None

    def peak_rss_mb(self) -> float | None:
        """The server process's peak resident memory (Linux ``VmHWM``), if readable."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except (OSError, TypeError):
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the server's log."""
        return log_tail(self.log_path, chars)


def log_tail(path: Path, chars: int = 4000) -> str:
    """The last ``chars`` characters of a child server's log ('' before it exists)."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def wait_until_healthy(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    log_path: Path,
    what: str,
    poll: float = 0.5,
) -> None:
    """Return once GET ``url`` answers 200.

    Args:
        proc: the child server process.
        url: its health endpoint.
        timeout: seconds to wait.
        log_path: the child's log, quoted in the error.
        what: names the server in the error.
        poll: seconds between tries.

    Raises:
        RuntimeError: ``proc`` exited first, or ``timeout`` seconds passed (with the log's tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            msg = f"{what} exited with {proc.returncode}:\n{log_tail(log_path)}"
            raise RuntimeError(msg)
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            msg = f"{what} did not answer within {timeout:g} s:\n{log_tail(log_path)}"
            raise RuntimeError(msg)
        time.sleep(poll)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_model(
    folder: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    threads: int = 1,
    continuous_batching: bool = False,
    cb_block_size: int = 32,
    cb_num_blocks: int = 512,
    startup_timeout: float = 180.0,
) -> Iterator[ServedModel]:
    """Start ``transformers serve`` on ``folder``, wait until it answers, stop it on exit.

    With continuous batching the KV cache is bounded (``cb_block_size`` × ``cb_num_blocks``
    tokens): unbounded, the server for the 135M model grew past 8 GB on CPU and was killed.

    Raises:
        LocalExtraMissingError: the ``transformers`` command is not installed.
        RuntimeError: the server exited or did not answer within ``startup_timeout``.
    """
    exe = shutil.which(
        "transformers",
        path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
    )
    if exe is None:
        msg = "`transformers serve` is not installed: pip install 'hia-chain[serving]'."
        raise LocalExtraMissingError(msg)
    port = port or free_port(host)
    workdir = Path(tempfile.mkdtemp(prefix="hia-serve-"))
    log_path = workdir / "server.log"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HUB_CACHE": str(workdir / "hub"),  # /v1/models needs an existing cache folder
    }
    (workdir / "hub").mkdir()
    args = [exe, "serve", str(folder), "--host", host, "--port", str(port), "--device", "cpu"]
    if continuous_batching:
        args += [
            "--continuous-batching",
            "--cb-block-size",
            str(cb_block_size),
            "--cb-num-blocks",
            str(cb_num_blocks),
        ]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    served = ServedModel(
        base_url=f"http://{host}:{port}/v1", model=str(folder), log_path=log_path, pid=proc.pid
    )
    try:
        health = f"http://{host}:{port}/health"
        wait_until_healthy(proc, health, startup_timeout, log_path, "transformers serve")
        logger.info("transformers serve ready at %s", served.base_url)
        yield served
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)

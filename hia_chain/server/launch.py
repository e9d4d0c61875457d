"""Running the server: :func:`serve` under uvicorn (what ``hia-chain serve`` calls), and
:func:`running_server`, which starts ``hia-chain serve`` as a child process on a free
loopback port for the duration of a ``with`` block (scripts, notebooks, tests).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hia_chain.errors import ConfigError
from hia_chain.local.serve import free_port, log_tail, wait_until_healthy
from hia_chain.server.config import ENV_CONFIG, ServerConfig

__all__ = ["RunningServer", "running_server", "serve"]


def serve(config: ServerConfig) -> None:
    """Serve ``config`` with uvicorn until interrupted (blocking).

    Raises:
        ConfigError: several workers with per-key caps but no ``redis_url`` (each worker
            would keep its own pool, so a key could spend its cap once per worker).
    """
    import uvicorn

    from hia_chain.server.app import create_app
    from hia_chain.server.keys import KeyRing

    keys = KeyRing.load(config.keys_path) if config.keys_path else None  # fail before binding
    if config.workers > 1 and config.redis_url is None and keys is not None and keys.has_caps():
        msg = (
            f"--workers {config.workers} with per-key caps needs --redis-url: each worker would "
            "otherwise keep its own budget pools and a key could spend its cap once per worker."
        )
        raise ConfigError(msg)
    if config.redis_url is not None:
        _check_redis()
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["hia_chain"] = {
        "handlers": ["default"],
        "level": config.log_level.upper(),
        "propagate": False,
    }
    common = {
        "log_config": log_config,
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": False,  # one line per request of our own, with key names, not keys
        "timeout_keep_alive": 30,
        "backlog": 4096,
    }
    if config.workers == 1:
        uvicorn.run(create_app(config), **common)  # type: ignore[arg-type]
        return
    os.environ[ENV_CONFIG] = config.model_dump_json()
    uvicorn.run("hia_chain.server.app:app_from_env", factory=True, workers=config.workers, **common)  # type: ignore[arg-type]


def _check_redis() -> None:
    """Fail before binding when ``--redis-url`` is given without the Redis client, rather
    than on the first request (the Redis budget imports it on first use)."""
    if importlib.util.find_spec("redis") is None:
        msg = "--redis-url needs the Redis client: pip install 'hia-chain[redis]'."
        raise ConfigError(msg)


@dataclass(frozen=True)
class RunningServer:
    """A ``hia-chain serve`` child process."""

    base_url: str
    """OpenAI-style base URL, e.g. ``http://127.0.0.1:8123/v1``."""
    pid: int
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        """The last ``chars`` characters of the server's log."""
        return log_tail(self.log_path, chars)


@contextmanager
def running_server(
    args: Sequence[str] = (),
    *,
    port: int | None = None,
    env: dict[str, str] | None = None,
    startup_timeout: float = 120.0,
) -> Iterator[RunningServer]:
    """Start ``hia-chain serve ARGS`` on 127.0.0.1, wait until ``/health`` answers, stop it
    on exit.

    Args:
        args: Flags of ``hia-chain serve`` (``--upstream-base-url``, ``--keys``, ...).
        port: Port to listen on (default: a free one).
        env: Extra environment variables for the server.
        startup_timeout: Seconds to wait for ``/health`` (the embedded model loads first).

    Raises:
        RuntimeError: the server exited or did not answer in time (with its log's tail).
    """
    port = port or free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="hia-serve-"))
    log_path = log_dir / "server.log"
    cmd = [sys.executable, "-m", "hia_chain.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), *args]
    child_env = {
        **os.environ,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
        **(env or {}),
    }
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=child_env, start_new_session=True
        )
    server = RunningServer(f"http://127.0.0.1:{port}/v1", proc.pid, log_path)
    try:
        health = f"http://127.0.0.1:{port}/health"
        wait_until_healthy(proc, health, startup_timeout, log_path, "hia-chain serve", poll=0.2)
        yield server
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn workers
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)

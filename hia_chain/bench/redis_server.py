"""A throwaway local ``redis-server``: for tests, the Redis benchmark and trying things out.

Why a real server and not an in-process fake: what :class:`~hia_chain.RedisBudget` promises
(atomic Lua scripts, leases that expire on the server's clock, many processes on one pool) is
only tested by the real thing. The server listens on 127.0.0.1 only, on a free port, keeps its
files in a temporary directory and persists nothing (``--save ''``, no AOF).

Needs the ``redis-server`` binary (Debian/Ubuntu: ``apt-get install redis-server``).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hia_chain.errors import ConfigError
from hia_chain.local.serve import free_port

__all__ = ["LocalRedis", "local_redis_server"]


@dataclass
class LocalRedis:
    """A running local ``redis-server``: where it is, and how to stop and start it again."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        """Stop the server (its data is gone: nothing is persisted)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def start(self, timeout: float = 10.0) -> None:
        """Start the server on the same port (again, after :meth:`stop`)."""
        exe = shutil.which("redis-server")
        if exe is None:
            msg = (
                "`redis-server` is not installed: `apt-get install redis-server` (Debian/Ubuntu) "
                "or see https://redis.io/docs/latest/operate/oss_and_stack/install/."
            )
            raise ConfigError(msg)
        args = [exe, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", str(self.directory), "--daemonize", "no"]
        args += ["--logfile", str(self.directory / "redis.log"), "--protected-mode", "yes"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode()
                log = self.directory / "redis.log"
                tail = log.read_text()[-2000:] if log.exists() else ""
                msg = f"redis-server exited at start ({self.process.returncode}): {err}{tail}"
                raise RuntimeError(msg)
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        msg = f"redis-server did not answer on 127.0.0.1:{self.port} within {timeout} s."
        raise RuntimeError(msg)


@contextmanager
def local_redis_server(port: int | None = None) -> Iterator[LocalRedis]:
    """Run ``redis-server`` on 127.0.0.1 (a free port unless given) for the block.

    Raises:
        ConfigError: ``redis-server`` is not installed.
        RuntimeError: it did not start.
    """
    with tempfile.TemporaryDirectory(prefix="hia-redis-") as tmp:
        server = LocalRedis(port=port or free_port(), directory=Path(tmp), process=None)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def _ping(port: int) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:``port`` (raw RESP, no client needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False

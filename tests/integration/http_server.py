"""The real service as a user runs it: `card-checkout serve` in a subprocess, keys from the CLI."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CLI = Path(sys.executable).with_name("card-checkout")
STARTUP_SECONDS = 15.0
STOP_SECONDS = 10.0


def wait_until_answers(url: str, seconds: float = 15.0) -> None:
    """Poll `url` until it answers 200 (a server starting up)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


@contextlib.contextmanager
def serving(port: int, env: dict[str, str], cwd: Path) -> Iterator[None]:
    """`card-checkout serve` on `port` with `env`, answering, for the block's time."""
    server = subprocess.Popen(
        [str(CLI), "serve", "--port", str(port)], env=env, cwd=cwd,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        wait_until_answers(f"http://127.0.0.1:{port}/healthz")
        yield
    finally:
        server.terminate()
        server.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Settings that would point the service somewhere else than the sandbox and the test database.
_NOT_INHERITED = ("STRIPE_", "DATABASE_", "PUBLIC_BASE_URL")


def cli_environ(database_url: str, **extra: str) -> dict[str, str]:
    """The environment for `card-checkout`: ours without the service's own settings (so the
    sandbox gateway serves, whatever the caller has set), the database, and `extra`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
    return {**inherited, "DATABASE_URL": database_url, **extra}


def create_api_key(database_url: str, environment: str, role: str) -> str:
    """`card-checkout api-keys create`: the key is the last line it prints."""
    result = subprocess.run(
        [str(CLI), "api-keys", "create", "--environment", environment, "--role", role],
        env=cli_environ(database_url),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"api-keys create failed: {result.stderr}"
    key = result.stdout.strip().splitlines()[-1].strip()
    assert re.fullmatch(r"\S+", key), f"no key in the output: {result.stdout!r}"
    return key


class Server:
    """`card-checkout serve` on a free port; its stderr (the log) goes to a file."""

    def __init__(
        self, database_url: str, log_path: Path, extra_env: dict[str, str] | None = None
    ) -> None:
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._database_url = database_url
        self._process: subprocess.Popen[bytes] | None = None

    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(CLI), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=cli_environ(
                    self._database_url, PUBLIC_BASE_URL=self.base_url, **self.extra_env
                ),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        try:
            self._wait_until_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_until_healthy(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise AssertionError(
                    f"the server exited with {self._process.returncode}:\n{self.log()}"
                )
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(
            f"{self.base_url}/healthz did not answer within {STARTUP_SECONDS} s:\n{self.log()}"
        )

    def stop(self) -> None:
        """Terminate (SIGTERM: uvicorn shuts down gracefully), then kill if it lingers."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STOP_SECONDS)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

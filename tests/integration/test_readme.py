"""The README's promises, run as a user would run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.integration.http_server import free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_readme_library_example_prints_what_the_readme_says() -> None:
    script, expected = _blocks("python")[0], _blocks("text")[0]
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == expected


def test_readme_first_lines_give_the_run_and_test_commands() -> None:
    first_block = _blocks("sh")[0]
    assert first_block.splitlines()[0].startswith("make run")
    assert first_block.splitlines()[1].startswith("make test")


def test_the_demo_prints_curl_commands_that_work_as_printed(tmp_path: Path) -> None:
    """`make run`'s path: migrate, demo, serve; then the printed commands pay the invoice."""
    cli = str(Path(sys.executable).with_name("card-checkout"))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], capture_output=True, text=True, timeout=60, check=False, env=env,
            cwd=tmp_path,
        )  # fmt: skip

    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "newest schema" in migrated.stdout
    demo = run("demo")
    assert demo.returncode == 0, demo.stderr
    commands = [line for line in demo.stdout.splitlines() if line.startswith("curl ")]
    assert len(commands) == 3
    server = subprocess.Popen(
        [cli, "serve", "--port", str(port)], env=env, cwd=tmp_path,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        outputs = [
            subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
            ).stdout
            for command in commands
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)
    payment, invoice, listed = (json.loads(output) for output in outputs)
    assert payment["payment_status"] == "succeeded"
    assert payment["metadata"]["card_last4"] == "4242"
    assert invoice["amount_remaining"] == "0.00"
    assert invoice["payment_status"] == "succeeded"
    assert [p["id"] for p in listed["items"]] == [payment["id"]]


def _wait_for(url: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")

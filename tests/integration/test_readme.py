"""The README's promises, run as a user would run them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.integration.http_server import free_port, serving

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
    with serving(port, env, tmp_path):
        outputs = [
            subprocess.run(
                ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=True
            ).stdout
            for command in commands
        ]
    payment, invoice, listed = (json.loads(output) for output in outputs)
    assert payment["payment_status"] == "succeeded"
    assert payment["metadata"]["card_last4"] == "4242"
    assert invoice["amount_remaining"] == "0.00"
    assert invoice["payment_status"] == "succeeded"
    assert [p["id"] for p in listed["items"]] == [payment["id"]]


def test_the_readmes_first_tour_works_as_pasted(tmp_path: Path) -> None:
    """The README's tour, run by bash from the repository's root as a user pastes it, against
    a service on a free port (the one substitution: its port for 8000)."""
    [tour] = [block for block in _blocks("sh") if block.startswith("export PATH")]
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "STRIPE_"))},
        "DATABASE_URL": f"sqlite:///{tmp_path / 'tour.sqlite3'}",
    }
    cli = str(Path(sys.executable).with_name("card-checkout"))
    assert (
        subprocess.run([cli, "migrate"], env=env, capture_output=True, check=False).returncode == 0
    )
    with serving(port, env, tmp_path):
        ran = subprocess.run(
            ["bash", "-e", "-c", tour.replace("127.0.0.1:8000", f"127.0.0.1:{port}")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    connection, created, found, keys = _json_values(ran.stdout)
    assert (connection["provider"], connection["source"]) == ("sandbox", "default")
    assert created["external_id"] == "acme-1"
    assert [c["id"] for c in found["items"]] == [created["id"]]
    assert [k["role"] for k in keys["items"]] == ["admin"]


def _json_values(text: str) -> list[Any]:
    """The JSON values printed one after another (curl adds no newline after a body)."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text.rstrip()):
        value, at = decoder.raw_decode(text, at)
        values.append(value)
        while at < len(text) and text[at].isspace():
            at += 1
    return values

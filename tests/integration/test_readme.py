"""The README's promises, run as a user would run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

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


def test_cli_migrates_then_demo_charges_a_saved_card_and_shows_a_decline(
    tmp_path: Path,
) -> None:
    cli = str(Path(sys.executable).with_name("card-checkout"))
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}"}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [cli, *args], capture_output=True, text=True, timeout=60, check=False, env=env,
            cwd=tmp_path,
        )  # fmt: skip

    migrated = run("migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "newest schema" in migrated.stdout
    result = run("demo")
    assert result.returncode == 0, result.stderr
    assert re.search(r"payment\s+pay_\w+ succeeded 150.00 usd on visa \.\.\.\.4242", result.stdout)
    assert "declined   card_declined" in result.stdout
    assert "next_action=contact_bank" in result.stdout

"""The README's promises, run as a user would run them."""

from __future__ import annotations

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


def test_cli_demo_charges_a_saved_card_and_shows_a_decline() -> None:
    cli = Path(sys.executable).with_name("card-checkout")
    result = subprocess.run(
        [str(cli), "demo"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"payment\s+pay_\w+ succeeded 150.00 usd on visa \.\.\.\.4242", result.stdout)
    assert "declined   card_declined" in result.stdout
    assert "next_action=contact_bank" in result.stdout

"""The reference pages in docs/ are generated from the code and must be up to date."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bot import docs
from bot.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_generated_pages_are_current() -> None:
    for path, text in docs.pages().items():
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is stale: run python3 tasks.py docs"
        )


def test_every_setting_is_documented_with_a_meaning() -> None:
    comments = docs.env_comments((ROOT / ".env.example").read_text(encoding="utf-8"))
    assert docs.undocumented(comments) == []
    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        [row] = [line for line in page.splitlines() if line.startswith(f"| `{name.upper()}` |")]
        assert row.split("|")[4].strip(), f"{name.upper()} has no meaning"


def test_every_command_is_in_the_reference() -> None:
    page = (ROOT / "docs" / "commands.md").read_text(encoding="utf-8")
    for command in docs.build_registry():
        usage = command.usage.replace("|", r"\|")
        assert f"| `{usage}` |" in page, command.name


def test_check_mode_fails_on_a_stale_page(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "bot.docs", "--check"], cwd=ROOT, capture_output=True
    )
    assert ok.returncode == 0, ok.stderr


def test_env_comments_follow_groups_and_sections() -> None:
    found = docs.env_comments(
        "# --- HTTP ---\nHTTP_HOST=\nHTTP_PORT=\n# Bot token and secret.\nA=\nB=\n# Own.\nC=\n"
    )
    assert found == {
        "HTTP_HOST": "HTTP",
        "HTTP_PORT": "HTTP",
        "A": "Bot token and secret.",
        "B": "Bot token and secret.",
        "C": "Own.",
    }

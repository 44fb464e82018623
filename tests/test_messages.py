"""Messages, logs and charts that used to mislead, each as a newcomer meets it: through the shell
(a real subprocess) or the console chat."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from admin_commands import charts
from bot.app import App
from core.errors import SwitchboardError
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.test_cli import _env, _run


async def _run_at(
    level: str, args: list[str], env: dict[str, str], stdin: bytes = b""
) -> tuple[int, str, str]:
    """``python -m bot --log-level LEVEL ARGS`` (``_run`` runs at WARNING)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--log-level", level, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env, cwd=env["MEDIA_DIR"].rsplit("/", 1)[0],
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _refusal(app: App, *words: str) -> str:
    with pytest.raises(SwitchboardError) as refused:
        await admin(app, *words)
    return refused.value.user_message


# -- logs ------------------------------------------------------------------------------------------


async def test_chat_at_info_logs_no_http_requests_and_no_refusals(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    llm.reply_text = "Hi there."
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    assert (await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env))[0] == 0
    assert (await _run(["admin", "tokens", "grant", "acme", "100000"], env))[0] == 0
    code, out, err = await _run_at(
        "INFO", ["chat", "--tenant", "acme"], env, b"hello\n/tokens grant\n/frobnicate\n"
    )
    assert code == 0, err
    assert "Hi there." in out and "Unknown command 'frobnicate'." in out
    assert "httpx" not in err and "HTTP Request" not in err
    assert "turn refused" not in err and "Usage:" not in err


async def test_an_unknown_log_level_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    code, out, err = await _run_at("LOUD", ["admin", "help"], _env(tmp_path))
    assert code == 2 and out == ""
    assert "argument --log-level: invalid choice: 'LOUD'" in err and "Traceback" not in err


def test_charts_log_nothing_about_categorical_units(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    charts.ranked_bars("Cost", ["2026-01", "42"], [Decimal("1.5"), Decimal("0.25")], "EUR")
    assert [r for r in caplog.records if r.name.startswith("matplotlib")] == []


# -- the newcomer's first steps -------------------------------------------------------------------


async def test_chat_without_a_provider_says_so(tmp_path: Path, database_url: str) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url)
    assert (await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env))[0] == 0
    code, out, err = await _run(["chat", "--tenant", "acme"], env, b"hi\n", cwd=tmp_path)
    assert code == 2 and out == ""
    assert "error: No LLM provider configured" in err
    assert "No assistant is enabled" not in err


async def test_run_without_settings_names_env_example_and_chat(tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    code, _, err = await _run(["run"], env, cwd=tmp_path)
    assert code == 2
    hints = [line for line in err.splitlines() if line.startswith("hint:")]
    assert "copy .env.example to .env" in hints[0] and "docs/configuration.md" in hints[0]
    assert "switchboard chat --tenant demo" in hints[1]


async def test_shell_stats_have_no_markdown_fences(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, out, err = await _run(["admin", "stats"], env)
    assert code == 0, err
    assert "```" not in out and out.startswith("Switchboard, last 30 days")
    for command in ("tenants", "assistants"):
        chart = tmp_path / f"{command}.png"
        code, out, err = await _run(["admin", "stats", command, "--chart", str(chart)], env)
        assert code == 0, err
        assert chart.read_bytes().startswith(b"\x89PNG")


# -- validation messages that name the actual problem ---------------------------------------------


async def test_validation_messages(app: App) -> None:
    await tenant_with_tokens(app, tokens=0)
    grant = await _refusal(app, "tokens", "grant", "acme")
    assert grant.startswith("The following arguments are required: N.\n")
    huge = await _refusal(app, "invoice", "new", "acme", "99999999999999", "y")
    assert "'99999999999999' must be at most 100,000,000" in huge
    early = await _refusal(app, "stats", "1990-01")
    assert early.startswith("'1990-01' is too early: reports cover months from 2000-01 on.")
    month = await _refusal(app, "stats", "2026-13")
    assert "a month YYYY-MM" in month
    empty = await _refusal(app, "tenant", "create", "ok1", "--name", "")
    assert empty.startswith("Argument --name: must not be empty.")
    telegram = await _refusal(app, "admin", "add", "telegram:abc", "viewer")
    assert "a Telegram id is a number, like telegram:12345" in telegram
    made = await admin(app, "tenant", "create", "ok2", "--name", "-2+3")
    assert made.data["name"] == "-2+3"


async def test_counts_and_invoice_wording(app: App, llm: FakeLLMServer) -> None:
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello")
    shown = await admin(app, "tenant", "show", "acme")
    assert "This month: 1 call, " in shown.text
    created = await admin(app, "invoice", "new", "acme", "12", "Work")
    number = created.data["number"]
    assert created.text.startswith(f"Created {number} acme draft 14.40 EUR.")


# -- charts ----------------------------------------------------------------------------------------


def test_the_date_axis_names_the_last_day_and_costs_read_like_tables() -> None:
    days = [date(2026, 11, 1) + timedelta(n) for n in range(30)]
    cost = [Decimal(0)] * 29 + [Decimal("0.000160")]
    figure = charts.daily_usage_figure("t", days, [0] * 29 + [900], [0] * 29 + [100], cost, "EUR")
    figure.canvas.draw()
    tokens_axis, cost_axis = figure.axes
    ticks = [t.get_text() for t in tokens_axis.get_xticklabels()]
    assert ticks[-1] == "30 Nov"
    assert tokens_axis.get_xlim()[1] >= len(days) - 1
    labels = [t.get_text() for t in cost_axis.get_yticklabels()]
    assert "0.00016" not in labels and all(len(x.split(".")[1]) <= 4 for x in labels)
    # A day's cost is drawn as that day's step, not a slope from the idle day before.
    [line] = cost_axis.get_lines()
    assert line.get_drawstyle() == "steps-mid"


def test_bar_labels_have_four_decimals_like_tables() -> None:
    figure = charts.ranked_bars_figure(
        "Cost by model", ["gpt-4o-mini"], [Decimal("0.123456")], "EUR"
    )
    [axis] = figure.axes
    assert [t.get_text() for t in axis.texts] == ["0.1235 EUR"]

"""The ``switchboard`` console script, run as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from aiohttp import ClientSession
from alembic.script import ScriptDirectory

from bot.app import App
from bot.service import ServiceRunner
from storage import migrate
from tests.conftest import AppFactory, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer


async def _run(
    args: list[str], env: dict[str, str], stdin: bytes = b"", cwd: Path | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "--log-level",
        "WARNING",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    keep = {
        k: v
        for k, v in os.environ.items()
        if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV")
    }
    root = str(Path(__file__).resolve().parents[1])
    keep["PYTHONPATH"] = os.pathsep.join(filter(None, [root, keep.get("PYTHONPATH")]))
    return {**keep, "MEDIA_DIR": str(tmp_path / "media"), **extra}


async def test_provision_grant_chat_and_inspect(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    llm.reply_text = "Hello from a local model."
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)

    code, out, err = await _run(
        [
            "admin",
            "--json",
            "tenant",
            "create",
            "acme",
            "--name",
            "Acme",
            "--email",
            "ops@acme.test",
        ],
        env,
        cwd=tmp_path,
    )
    assert code == 0, err
    created = json.loads(out)
    assert created["slug"] == "acme" and created["invite_code"]

    code, out, err = await _run(["admin", "tokens", "grant", "acme", "100000"], env)
    assert code == 0 and "balance 100,000" in out, err

    code, out, err = await _run(["chat", "--tenant", "acme"], env, stdin=b"hello\n")
    assert code == 0, err
    assert out.strip() == "Hello from a local model."

    code, out, err = await _run(["admin", "--json", "usage", "--tenant", "acme"], env)
    usage = json.loads(out)
    [event] = usage["events"]
    assert (event["input_tokens"], event["output_tokens"]) == (
        llm.last_usage["input"],
        llm.last_usage["output"],
    )
    code, out, _ = await _run(["admin", "--json", "library", "--tenant", "acme"], env)
    assert json.loads(out)[0]["text"] == "Hello from a local model."

    code, out, _ = await _run(["admin", "--json", "tenant", "show", "acme"], env)
    shown = json.loads(out)
    for key in ("slug", "name", "status", "plan", "token_balance", "tokens_reserved", "usage"):
        assert key in shown
    assert shown["token_balance"] == 100_000 - event["charged_tokens"]

    code, out, _ = await _run(["admin", "--json", "ledger", "verify"], env)
    assert json.loads(out)["ok"] is True


async def test_admin_errors_exit_nonzero_with_message(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, out, _ = await _run(["admin", "--json", "tenant", "show", "nope"], env)
    assert code == 1 and json.loads(out) == {"error": "No tenant 'nope'."}


async def test_run_refuses_without_channel_or_provider(tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    code, _, err = await _run(["run"], env, cwd=tmp_path)
    assert code == 2
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 2
    assert "No channel configured" in lines[0] and "No LLM provider" in lines[1]


async def test_migrate_command(tmp_path: Path) -> None:
    env = _env(tmp_path, DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}")
    code, out, err = await _run(["migrate"], env, cwd=tmp_path)
    assert code == 0, err
    head = ScriptDirectory.from_config(migrate.alembic_config()).get_current_head()
    assert out.strip() == f"database is at revision {head}"


async def test_http_health_and_metrics(make_app, llm: FakeLLMServer) -> None:  # type: ignore[no-untyped-def]
    app: App = await make_app(HTTP_PORT="0")
    await tenant_with_tokens(app)
    await bind_console(app)
    await say(app, "hello")
    service = ServiceRunner(app, channels=[])
    await service.start()
    try:
        async with ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{service.port}/healthz") as resp:
                assert resp.status == 200 and (await resp.json())["database"] == "ok"
            async with http.get(f"http://127.0.0.1:{service.port}/metrics") as resp:
                body = await resp.text()
        assert 'switchboard_turns_total{channel="console",outcome="answered"} 1.0' in body
        assert "switchboard_provider_latency_seconds_bucket" in body
    finally:
        await service.stop()


async def test_graceful_stop_lets_inflight_turns_finish(make_app, llm: FakeLLMServer) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from storage.models import UsageEvent
    from tests.conftest import console_message
    from tests.sinks import RecordingSink

    app: App = await make_app(HTTP_PORT="0")
    await tenant_with_tokens(app)
    await bind_console(app)
    llm.reply_text = "one two three four five six seven eight nine ten"
    llm.chunk_size = 4
    llm.delay = 0.05
    service = ServiceRunner(app, channels=[])
    await service.start()
    streaming = asyncio.Event()
    sink = RecordingSink(on_delta=lambda _delta: streaming.set())
    turn = asyncio.create_task(app.pipeline.handle(console_message("count"), sink))
    await asyncio.wait_for(streaming.wait(), 10)
    await service.stop()  # must wait for the turn, not cut it
    ctx = await turn
    assert ctx.outcome == "answered"
    assert sink.texts == [llm.reply_text]
    # The engine is disposed by stop(); a fresh one sees the settled usage event.
    from storage.db import create_engine, create_session_factory

    engine = create_engine(app.settings.database_url)
    async with create_session_factory(engine)() as session:
        event = (await session.execute(select(UsageEvent))).scalar_one()
    await engine.dispose()
    assert event.status == "settled"


async def test_chat_without_tenant_uses_the_only_one(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, _, err = await _run(["chat"], env, stdin=b"hello\n")
    assert code == 2 and "Which tenant?" in err
    await _run(["admin", "tenant", "create", "solo", "--name", "Solo"], env)
    await _run(["admin", "tokens", "grant", "solo", "5000"], env)
    code, out, err = await _run(["chat", "--user", "ann"], env, stdin=b"hello\n/usage\n")
    assert code == 0, err
    assert llm.reply_text in out and "tokens left" in out


async def test_bad_values_are_refused_with_the_usage_line_and_no_traceback(
    tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    """Once raw tracebacks (or a REAL balance on SQLite); now one refusal, exit 1."""
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, _, err = await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env)
    assert code == 0, err
    await _run(["admin", "tokens", "grant", "acme", "100"], env)

    code, out, err = await _run(["admin", "tenant", "create", "big", "--name", "x" * 100_000], env)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        "Argument --name: at most 200 characters (got 100,000).",
        "Usage: /tenant create --name NAME [--email EMAIL] SLUG",
    ]
    refusals = [
        (["tenant", "create", "empty", "--name", ""], "Argument --name: must not be empty"),
        (["tenant", "create", "bad", "--name", "B", "--email", "not an email"], "not an email"),
        (["tokens", "grant", "acme", str(2**63 - 1)], "must be from 1 to 1,000,000,000,000"),
        (["tokens", "grant", "acme", "10^23"], "'10^23' is not a whole number"),
        (["assistant", "set", "general", "temperature", "nan"], "is not a finite number"),
        (["library", "get", "²", "--tenant", "acme"], "'²' is not an item number"),
    ]
    for words, problem in refusals:
        code, out, err = await _run(["admin", "--json", *words], env)
        assert code == 1, words
        assert problem in json.loads(out)["error"], words
        assert "Usage: /" in json.loads(out)["error"], words
        assert "Traceback" not in err, words

    code, out, _ = await _run(["admin", "--json", "tenant", "list"], env)
    assert [(t["slug"], t["token_balance"]) for t in json.loads(out)] == [("acme", 100)]
    code, out, _ = await _run(["admin", "--json", "ledger", "verify"], env)
    assert (code, json.loads(out)["ok"]) == (0, True)


async def test_a_database_error_from_a_command_is_one_line(
    make_app: AppFactory, tmp_path: Path, database_url: str, llm: FakeLLMServer
) -> None:
    """A real database refusal (a trigger) reaches the shell as one line, exit 1."""
    from sqlalchemy import text

    app: App = await make_app()
    async with app.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER frozen BEFORE INSERT ON tenants "
                    "BEGIN SELECT RAISE(ABORT, 'tenants are frozen'); END"
                )
            )
        else:
            await conn.execute(
                text(
                    "CREATE FUNCTION frozen() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'tenants are frozen'; END $$"
                )
            )
            await conn.execute(
                text(
                    "CREATE TRIGGER frozen BEFORE INSERT ON tenants "
                    "FOR EACH ROW EXECUTE FUNCTION frozen()"
                )
            )
    env = _env(tmp_path, DATABASE_URL=database_url, OPENAI_BASE_URL=llm.base_url)
    code, out, err = await _run(["admin", "tenant", "create", "acme", "--name", "Acme"], env)
    assert (code, out, err) == (1, "", "Database error: tenants are frozen\n")
    code, out, err = await _run(
        ["admin", "--json", "tenant", "create", "acme", "--name", "Acme"], env
    )
    assert (code, json.loads(out), err) == (1, {"error": "Database error: tenants are frozen"}, "")

"""``/export usage|library|ledger``: CSV re-read with the csv module matches ``/stats`` and the
balances; rows are streamed in batches; a file in chat, stdout or ``--out`` from the shell."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from admin_commands.registry import Caller, CommandResult
from bot.app import App
from bot.cli import main
from core.envelope import OutboundFile
from core.errors import NotFoundError, PermissionDenied, UsageError
from storage.models import ContentItem, LedgerEntry, UsageEvent
from storage.repositories.exports import ExportFilter, ExportRepository
from storage.repositories.tenants import TenantRepository
from tests.conftest import (
    AppFactory,
    admin,
    bind_console,
    console_message,
    say,
    tenant_with_tokens,
)
from tests.fakes.llm_server import FakeLLMServer
from tests.sinks import RecordingSink
from tests.test_alerts import Clock

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
#: An admin in a chat (files come back as documents, not on stdout).
BOSS = Caller(channel="telegram", user_id="111", role="admin")
VIEWER = Caller(channel="telegram", user_id="222", role="viewer")


@pytest.fixture
async def busy(make_app: AppFactory, llm: FakeLLMServer) -> App:
    """Two tenants, two models, two months, failures; provider USD at 0.9 EUR."""
    clock = Clock(NOW)
    app: App = await make_app(clock=clock, USD_TO_BILLING_RATE="0.9")
    for slug in ("acme", "beta"):
        await tenant_with_tokens(app, slug, tokens=500_000)
        await bind_console(app, slug)
    await admin(app, "assistant", "set", "analyst", "model", "gpt-4.1-mini")
    for n, days_ago in enumerate((0, 4, 9, 12, 30)):  # 9 and later: October
        clock.at = NOW - timedelta(days=days_ago, hours=n)
        llm.reply_text = "an answer, with a comma " * (n + 1)
        await say(app, f"question {n}", slug="acme", user="ann")
        await say(app, "/use analyst", slug="beta", user="bob")
        await say(app, f'beta "quoted" {n}\nsecond line', slug="beta", user="bob")
        if n % 2 == 0:
            llm.fail_next(status=500)
            await say(app, "fails", slug="acme", user="ann")
    clock.at = NOW
    return app


def _read(file_text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(file_text, newline="")))


def _rows(result: CommandResult) -> list[dict[str, str]]:
    [file] = result.files
    assert file.path is not None and file.temporary and file.mime_type == "text/csv"
    rows = _read(file.path.read_text(encoding="utf-8"))
    file.discard()
    assert not file.path.exists(), "a sent export does not stay on disk"
    return rows


def _totals(rows: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "turns": len(rows),
        "failed_calls": sum(r["status"] == "failed" for r in rows),
        "tokens": {
            "input": sum(int(r["input_tokens"]) for r in rows),
            "output": sum(int(r["output_tokens"]) for r in rows),
        },
        "cost": str(
            sum((Decimal(r["billing_cost"]) for r in rows), Decimal(0)).quantize(Decimal("0.0001"))
        ),
    }


async def test_usage_export_matches_stats(busy: App) -> None:
    for label in ("2026-11", "2026-10"):
        for tenant in ("acme", "beta"):
            result = await admin(busy, "export", "usage", tenant, "--period", label, caller=BOSS)
            rows = _rows(result)
            assert result.data["rows"] == len(rows) > 0
            assert {r["tenant"] for r in rows} == {tenant}
            stats = (await admin(busy, "stats", "tenant", tenant, label)).data
            want = {k: stats[k] for k in ("turns", "failed_calls", "tokens", "cost")}
            assert _totals(rows) == want, (label, tenant)
        everyone = _rows(await admin(busy, "export", "usage", "--period", label, caller=BOSS))
        overview = (await admin(busy, "stats", label)).data
        assert _totals(everyone) == {
            k: overview[k] for k in ("turns", "failed_calls", "tokens", "cost")
        }

    every = _rows(await admin(busy, "export", "usage", caller=BOSS))
    async with busy.deps.sessions() as session:
        count = (await session.execute(select(func.count(UsageEvent.id)))).scalar_one()
    assert len(every) == count, "no period: every finished call"
    row = every[0]
    assert row["cost_currency"] == "USD" and row["billing_currency"] == "EUR"
    assert Decimal(row["billing_cost"]) == (Decimal(row["cost"]) * Decimal("0.9")).quantize(
        Decimal("0.000001")
    )
    assert row["priced"] in ("true", "false") and datetime.fromisoformat(row["created_at"])


async def test_ledger_and_library_exports(busy: App) -> None:
    ledger = _rows(await admin(busy, "export", "ledger", caller=BOSS))
    by_tenant: dict[str, int] = defaultdict(int)
    for row in ledger:
        by_tenant[row["tenant"]] += int(row["tokens"])
    async with busy.deps.sessions() as session:
        tenants = TenantRepository(session)
        balances = {slug: (await tenants.get(slug)).token_balance for slug in ("acme", "beta")}
        entries = (await session.execute(select(func.count(LedgerEntry.id)))).scalar_one()
        items = (await session.execute(select(ContentItem.text).order_by(ContentItem.id))).scalars()
        texts = sorted(items)
    assert dict(by_tenant) == balances and len(ledger) == entries
    assert {r["kind"] for r in ledger} == {"grant", "usage"}

    library = _rows(await admin(busy, "export", "library", caller=BOSS))
    assert sorted(r["text"] for r in library) == texts, "commas, quotes, newlines survive"
    beta = _rows(await admin(busy, "export", "library", "beta", "--period", "2026-11", caller=BOSS))
    assert sorted(int(r["id"]) for r in beta) == [1, 2, 3]
    assert {r["tenant"] for r in beta} == {"beta"}
    assert {r["assistant"] for r in beta} == {"analyst"}

    # Streamed: batches of at most the batch size, in time order, adding up to every row.
    async with busy.deps.sessions() as session:
        tenant = await TenantRepository(session).get("acme")
        repo = ExportRepository(session, batch_rows=3)
        batches = [list(b) async for b in repo.usage(ExportFilter(tenant_id=tenant.id))]
        total = (
            await session.execute(
                select(func.count(UsageEvent.id)).where(UsageEvent.tenant_id == tenant.id)
            )
        ).scalar_one()
    assert len(batches) > 2 and all(len(b) <= 3 for b in batches)
    assert sum(len(b) for b in batches) == total
    stamps = [row[0] for batch in batches for row in batch]
    assert stamps == sorted(stamps), "in time order"


def _leftovers() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("switchboard-export-*"))


async def test_bad_requests_change_nothing_and_permissions(busy: App, tmp_path: Path) -> None:
    before = _leftovers()
    refusals: list[tuple[list[str], type[Exception], str]] = [
        (["usage", "--out", "x.csv"], UsageError, "--out FILE is for the shell"),
        (["usage", "--period", "2026-13"], UsageError, "Usage: /export usage"),
        (["usage", "--period", "2027-01"], UsageError, "has not started yet"),
        (["usage", "Bad Slug"], UsageError, "invalid slug"),
        (["usage", "nosuch"], NotFoundError, "No tenant 'nosuch'."),
        (["payments"], UsageError, "/export ledger"),
    ]
    for words, error, message in refusals:
        with pytest.raises(error) as raised:
            await admin(busy, "export", *words, caller=BOSS)
        assert message in str(raised.value.user_message), words  # type: ignore[attr-defined]
    out_dir = _empty_dir(tmp_path / "out")
    with pytest.raises(UsageError):
        await admin(busy, "export", "usage", "--out", str(out_dir / "nowhere" / "x.csv"))
    with pytest.raises(UsageError):
        await admin(busy, "export", "usage", "--out", str(out_dir))
    with pytest.raises(NotFoundError):
        await admin(busy, "export", "usage", "nosuch", "--out", str(out_dir / "x.csv"))
    assert _listing(out_dir) == [], "no partial file where --out pointed"
    assert _leftovers() == before, "no temporary file left behind"

    # Who may export what.
    assert _rows(await admin(busy, "export", "usage", "acme", caller=VIEWER))
    for kind in ("ledger", "library"):
        with pytest.raises(PermissionDenied) as denied:
            await admin(busy, "export", kind, "acme", caller=VIEWER)
        assert denied.value.user_message == (
            f"Permission denied: /export {kind} needs the admin role."
        )
    sink = await say(busy, "/export usage beta", slug="acme", user="ann")
    assert sink.texts == ["Permission denied: /export usage needs the viewer role."]
    assert sink.files == []


class ReadingSink(RecordingSink):
    """Reads each file when it is sent, as a channel uploading it does."""

    def __init__(self) -> None:
        super().__init__()
        self.contents: list[str] = []

    async def send_file(self, file: OutboundFile) -> None:
        self.contents.append(file.read().decode())
        await super().send_file(file)


async def test_in_chat_the_csv_is_sent_then_deleted(busy: App) -> None:
    await admin(busy, "admin", "add", "console:watcher", "viewer")
    sink = ReadingSink()
    await busy.pipeline.handle(
        console_message("/export usage beta --period 2026-11", slug="acme", user="watcher"), sink
    )
    [file] = sink.files
    assert file.file_name == "usage-beta-2026-11.csv" and file.caption.endswith(" rows")
    rows = _read(sink.contents[0])
    assert rows and {r["tenant"] for r in rows} == {"beta"}
    assert file.path is not None and not file.path.exists(), "the temporary file is gone"


def _empty_dir(path: Path) -> Path:
    path.mkdir()
    return path


def _listing(path: Path) -> list[Path]:
    return list(path.iterdir())


@pytest.fixture
def shell_env(busy: App) -> Iterator[dict[str, str]]:
    settings = busy.settings
    yield {
        "DATABASE_URL": settings.database_url,
        "MEDIA_DIR": str(settings.media_dir),
        "OPENAI_BASE_URL": str(settings.openai_base_url),
        "DEFAULT_PROVIDER": "openai",
        "DEFAULT_MODEL": "gpt-4o-mini",
        "USD_TO_BILLING_RATE": "0.9",
    }


async def _shell(env: dict[str, str], *words: str) -> tuple[int, str]:
    """``switchboard admin WORDS`` in its own event loop (a thread), as from a terminal."""
    out = io.StringIO()
    code = await asyncio.to_thread(main, ["admin", *words], environ=env, stdout=out)
    return code, out.getvalue()


async def test_from_the_shell_to_stdout_or_a_file(
    busy: App, shell_env: dict[str, str], tmp_path: Path
) -> None:
    before = _leftovers()
    in_chat = _rows(await admin(busy, "export", "usage", "acme", caller=BOSS))

    code, out = await _shell(shell_env, "export", "usage", "acme")
    assert code == 0 and _read(out) == in_chat, "the CSV itself on stdout"

    target = tmp_path / "usage.csv"
    code, out = await _shell(shell_env, "export", "usage", "acme", "--out", str(target))
    assert code == 0 and f"written to {target}" in out
    assert _read(target.read_text(encoding="utf-8")) == in_chat

    code, out = await _shell(shell_env, "--json", "export", "ledger", "beta", "--period", "2026-11")
    document = json.loads(out)
    assert code == 0 and document["export"] == "ledger" and document["rows"] > 0
    assert document["period"] == {"from": "2026-11-01", "to": "2026-11-30"}
    saved = Path(shell_env["MEDIA_DIR"]) / "ledger-beta-2026-11.csv"
    assert len(_read(saved.read_text(encoding="utf-8"))) == document["rows"]

    code, out = await _shell(shell_env, "--json", "export", "usage", "--period", "13")
    assert code == 1 and "Usage: /export usage" in json.loads(out)["error"]
    assert _leftovers() == before


async def test_invoice_export_is_streamed_a_row_per_line(app: App) -> None:
    await admin(app, "tenant", "create", "acme", "--name", "Acme")
    numbers = []
    for n in range(4):
        doc = (await admin(app, "invoice", "new", "acme", f"{n + 1},50", "Work")).data
        await admin(app, "invoice", "line", doc["number"], "2", "Extra", "--qty", "1,5")
        numbers.append(doc["number"])

    result = await admin(app, "export", "invoices", "acme")
    assert result.output is not None and result.output.path is not None, "a file, not memory"
    rows = list(csv.DictReader(io.StringIO(result.output.path.read_text(encoding="utf-8"))))
    assert [(r["number"], r["line"]) for r in rows] == [
        (number, line) for number in numbers for line in ("1", "2")
    ]
    assert (rows[0]["amount"], rows[1]["quantity"], rows[1]["amount"]) == ("1.50", "1.5", "3.00")
    assert rows[0]["total"] == "5.40"  # (1.50 + 3.00) + 20 % VAT

    async with app.deps.sessions() as session:
        repo = ExportRepository(session, batch_rows=3)
        batches = [list(b) async for b in repo.invoice_lines(ExportFilter())]
    assert [len(b) for b in batches] == [3, 3, 2]

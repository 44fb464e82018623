"""Commands in the reader's language (DESIGN §9): command descriptions in /help and the
Telegram menus, unknown commands, the parser's refusals and the argument checks, in French
and German, while command and argument names stay English."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from admin_commands.registry import UnknownCommand
from bot.app import App
from core.errors import UsageError
from storage.models import Tenant
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_telegram import ADMIN_ID, Running, Start, start, telegram  # noqa: F401

FRENCH = 330044


def _from(fake: FakeTelegramServer, text: str, language: str) -> dict[str, Any]:
    update = fake.private_message(FRENCH, text, first_name="Amélie")
    update["message"]["from"]["language_code"] = language
    return update


async def _ask(run: Running, text: str, language: str = "fr") -> str:
    before = len(run.fake.bot_texts(FRENCH))
    await run.fake.send_update(_from(run.fake, text, language))
    await run.fake.wait_for_bot_messages(FRENCH, before + 1)
    return run.fake.bot_texts(FRENCH)[-1]


async def test_french_members_help_and_unknown_command(start: Start) -> None:  # noqa: F811
    run = await start()
    code = await tenant_with_tokens(run.app, "dupont")
    await _ask(run, f"/start {code}")

    help_lines = (await _ask(run, "/help")).splitlines()
    assert help_lines[0] == "Commandes :"
    assert (
        "/usage — Votre solde de jetons, votre consommation du mois et vos derniers paiements."
    ) in help_lines
    assert (
        "/new — Commencer une nouvelle conversation (l'assistant oublie l'historique de ce chat)."
    ) in help_lines
    assert "/help — Afficher les commandes que vous pouvez utiliser." in help_lines
    # Command names and usage lines stay as they are typed.
    assert "/use SLUG — Choisir l'assistant de ce chat." in help_lines

    unknown = await _ask(run, "/frobnicate")
    assert unknown == (
        "Commande inconnue : « frobnicate ». "
        "Envoyez /help pour voir les commandes que vous pouvez utiliser."
    )
    # An English app gets the English text, unchanged.
    assert await _ask(run, "/frobnicate", language="en") == (
        "Unknown command 'frobnicate'. Send /help for the commands you can run."
    )


async def test_telegram_menus_in_each_language(start: Start) -> None:  # noqa: F811
    run = await start(SUPERADMINS=f"telegram:{ADMIN_ID}")
    fake = run.fake
    default = '{"type": "default"}'

    def described(menu: list[dict[str, Any]]) -> dict[str, str]:
        return {c["command"]: c["description"] for c in menu}

    english = described(fake.commands[default])
    french = described(fake.localized_commands[(default, "fr")])
    german = described(fake.localized_commands[(default, "de")])
    assert english["help"] == "Show the commands you can run."
    assert french["help"] == "Afficher les commandes que vous pouvez utiliser."
    assert german["help"] == "Die Befehle anzeigen, die Sie verwenden können."
    assert german["language"] == "Die Sprache Ihrer Antworten anzeigen oder wählen (en, fr, de)."
    assert set(english) == set(french) == set(german)
    # The admin's own menu too; a group of subcommands lists their (English) names.
    scope = f'{{"chat_id": {ADMIN_ID}, "type": "chat"}}'
    admin_german = described(fake.localized_commands[(scope, "de")])
    assert admin_german["tenant"] == described(fake.commands[scope])["tenant"]
    assert "create" in admin_german["tenant"]
    assert admin_german["usage"].startswith("Ihr Token-Guthaben")


async def test_parser_refusals_and_argument_checks_in_german(make_app: AppFactory) -> None:
    app = await make_app()
    await tenant_with_tokens(app, "acme")
    await admin(app, "tenant", "set", "acme", "--language", "de")
    await bind_console(app, "acme")
    await admin(app, "admin", "add", "console:u1", "admin")

    missing = (await say(app, "/tokens grant")).texts[0]
    assert missing.splitlines()[0] == "Die folgenden Argumente sind erforderlich: SLUG, N."
    assert missing.splitlines()[1].startswith("Verwendung: /tokens grant SLUG N")

    too_many = (await say(app, "/tokens grant acme 99999999999999")).texts[0]
    assert too_many.splitlines()[0] == (
        "Argument N: '99999999999999' muss zwischen 1 und 1.000.000.000.000 liegen."
    )
    bad_slug = (await say(app, "/tenant show 'A B'")).texts[0]
    assert bad_slug.splitlines()[0] == (
        "Argument SLUG: ungültige Kennung 'A B': "
        "verwenden Sie 2 bis 63 Kleinbuchstaben, Ziffern und „-“."
    )
    extra = (await say(app, "/tenant show acme --bogus")).texts[0]
    assert extra.splitlines()[0] == "Unbekannte Argumente: --bogus."

    # The same refusals from the shell (DEFAULT_LANGUAGE) read as they always did.
    with pytest.raises(UsageError) as refused:
        await admin(app, "tokens", "grant", "acme", "99999999999999")
    assert refused.value.user_message.splitlines()[0] == (
        "Argument N: '99999999999999' must be from 1 to 1,000,000,000,000."
    )


async def test_unknown_command_from_the_shell_stays_english(app: App) -> None:
    with pytest.raises(UnknownCommand) as refused:
        await admin(app, "frobnicate")
    assert refused.value.user_message == (
        "Unknown command 'frobnicate'. Run `switchboard admin help` for the commands you can run."
    )


async def test_german_tenant_admin_reads_tenant_and_stats_in_german(
    make_app: AppFactory, llm: FakeLLMServer
) -> None:
    app = await make_app()
    await tenant_with_tokens(app, "acme", tokens=1_234_567)
    await admin(app, "tenant", "set", "acme", "--language", "de", "--vat-rate", "5.5%")
    await bind_console(app, "acme")
    await admin(app, "admin", "add", "console:u1", "viewer")
    await say(app, "hello")  # one turn, so there is usage to report

    shown = (await say(app, "/tenant show acme")).texts[0].splitlines()
    assert shown[0] == "Acme (acme) — in der Testphase, prepaid"
    assert shown[1].startswith("Guthaben: 1.23")
    assert shown[1].endswith(" Token (0 reserviert)")
    assert shown[2].startswith("Diesen Monat: 1 Aufruf, ")
    assert shown[3] == "USt. 5,5 % · Währung EUR"
    assert shown[4] == "Rechnungsangaben: Sprache de"

    stats = (await say(app, "/stats 2026-11")).texts[0]
    assert "Switchboard, November 2026" in stats
    assert "Organisationen" in stats and "0 aktiv · 1 in der Testphase · 0 gesperrt" in stats
    assert "Token Eingabe / Ausgabe" in stats and "Gesprächsrunden" in stats
    last_days = (await say(app, "/stats 7d")).texts[0]
    assert "letzte 7 Tage (" in last_days

    top = (await say(app, "/stats top")).texts[0]
    assert "Organisation" in top and "Kosten EUR" in top

    # A command the viewer role may not run: refused in German, and nothing changed.
    refused = await say(app, "/tenant suspend acme")
    assert refused.texts == ["Zugriff verweigert: /tenant suspend erfordert die Rolle admin."]
    listed = await admin(app, "tenant", "show", "acme")
    assert listed.data["status"] == "trial"

    # The same commands from the shell: English, exactly as before.
    english = (await admin(app, "tenant", "show", "acme")).text.splitlines()
    assert english[0] == "Acme (acme) — trial, prepaid"
    assert english[1].startswith("Balance: 1,23")
    assert english[3] == "VAT 5.5% · currency EUR"
    assert english[4] == "Billing: language de"


async def test_german_admin_tokens_and_members(make_app: AppFactory) -> None:
    app = await make_app()
    await tenant_with_tokens(app, "acme", tokens=100_000)
    await admin(app, "tenant", "set", "acme", "--language", "de")
    await bind_console(app, "acme")
    await admin(app, "admin", "add", "console:u1", "admin")

    refused = (await say(app, "/tokens adjust acme -200000 Korrektur")).texts[0]
    assert refused == (
        "Abgelehnt: Das Token-Guthaben würde von 100.000 auf -100.000 sinken, unter 0. "
        "Es wurde nichts geändert. Ein vorausbezahltes Guthaben bleibt bei 0 oder darüber: "
        "Fügen Sie --allow-negative hinzu, um darunter zu gehen."
    )
    adjusted = (await say(app, "/tokens adjust acme -1500 Korrektur")).texts[0]
    assert adjusted == (
        "Guthaben von acme um -1.500 Token korrigiert (Korrektur); Guthaben 100.000 → 98.500."
    )
    members = (await say(app, "/tenant members acme")).texts[0].splitlines()
    assert members[1] == "Mitglieder: 1"
    assert members[2].startswith("  console:u1 (u1) · admin · zuletzt aktiv ")
    assert members[3] == "Verknüpfte Chats: 1"

    # The shell's English, as it always read.
    english = await admin(app, "tokens", "adjust", "acme", "+1500", "back")
    assert english.text == "Adjusted acme by +1,500 tokens (back); balance 98,500 → 100,000."


async def test_french_alerts(make_app: AppFactory) -> None:
    now = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
    app = await make_app(clock=lambda: now)
    for slug, values in {
        "acme": {"status": "active", "last_activity_at": now},
        "ending": {"trial_ends_at": now + timedelta(days=3), "last_activity_at": now},
        "idle": {"status": "active", "last_activity_at": now - timedelta(days=9)},
    }.items():
        await tenant_with_tokens(app, slug, tokens=0)
        async with app.deps.sessions.begin() as session:
            await session.execute(update(Tenant).where(Tenant.slug == slug).values(**values))
    await admin(app, "tenant", "set", "acme", "--language", "fr")
    await bind_console(app, "acme")
    await admin(app, "admin", "add", "console:u1", "viewer")

    lines = (await say(app, "/alerts")).texts[0].splitlines()
    assert lines == [
        "2 alertes (1 période d'essai, 1 inactive) :",
        "• Période d'essai · ending : la période d'essai se termine le 2026-11-25 12:00 UTC "
        "(dans 3 jours)",
        "• Inactivité · idle : aucune activité depuis le 2026-11-13 (9 jours)",
    ]
    # --json keeps the English details.
    data = (await admin(app, "alerts")).data
    assert data[0]["detail"] == "trial ends on 2026-11-25 12:00 UTC (in 3 days)"

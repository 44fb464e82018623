"""Replies in the member's language (DESIGN §9): a French member's conversation through the
fake Telegram (its ``language_code``), ``/language``, and a tenant's language where the channel
gives none (the console, as Slack)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.app import App
from storage.models import Member
from tests.conftest import AppFactory, admin, bind_console, say, tenant_with_tokens
from tests.fakes.telegram_server import FakeTelegramServer
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

FRENCH = 330033


def _from(fake: FakeTelegramServer, user: int, text: str, language: str) -> dict[str, Any]:
    """A private message from a Telegram app set to ``language``."""
    update = fake.private_message(user, text, first_name="Amélie")
    update["message"]["from"]["language_code"] = language
    return update


async def _ask(run: Running, text: str, language: str = "fr") -> str:
    before = len(run.fake.bot_texts(FRENCH))
    await run.fake.send_update(_from(run.fake, FRENCH, text, language))
    await run.fake.wait_for_bot_messages(FRENCH, before + 1)
    return run.fake.bot_texts(FRENCH)[-1]


async def _chosen(app: App) -> str | None:
    async with app.deps.sessions() as session:
        member = (
            await session.scalars(select(Member).where(Member.external_id == str(FRENCH)))
        ).one()
        return member.language


async def test_french_member_conversation_then_german(start: Start) -> None:  # noqa: F811
    run = await start()
    code = await tenant_with_tokens(run.app, "dupont")
    await admin(run.app, "tenant", "set", "dupont", "--name", "Dupont SARL")

    welcome = await _ask(run, f"/start {code}")
    assert welcome.startswith("Bienvenue ! Ce chat est désormais lié à Dupont SARL.")
    assert "Écrivez un message pour parler à votre assistant" in welcome

    # A refusal, in French: a member may not run an admin command.
    refused = await _ask(run, "/tenant list")
    assert refused.startswith("Accès refusé : /tenant list nécessite le rôle")
    # Wrong arguments: the problem in French, the usage line as the parser writes it.
    wrong = await _ask(run, "/use nobody")
    assert wrong == "Aucun assistant « nobody » ici ; voir /assistants.\nUtilisation : /use SLUG"

    usage = await _ask(run, "/usage")
    assert usage.startswith(
        "Dupont SARL : il reste 100\u202f000 jetons (0 en cours d'utilisation)."
    )
    assert "Ce mois-ci : 0 appel, 0 jetons en entrée / 0 en sortie, coût 0 EUR." in usage

    # /language de: the confirmation already in German, and German from then on, whatever the
    # Telegram app says.
    assert await _ask(run, "/language de") == "Antworten erfolgen ab jetzt auf Deutsch."
    assert await _chosen(run.app) == "de"
    usage = await _ask(run, "/usage")
    assert usage.startswith("Dupont SARL: noch 100.000 Token verfügbar (0 in Verwendung).")
    assert "Diesen Monat: 0 Aufrufe" in usage
    shown = await _ask(run, "/language")
    assert shown.startswith("Antworten erfolgen auf Deutsch (von Ihnen mit /language gewählt).")
    assert "en English, fr français, de Deutsch" in shown

    # A code we do not speak: the choices, in the member's language, and nothing changed.
    bad = await _ask(run, "/language es")
    assert bad.startswith(
        "„es“ ist keine der verfügbaren Sprachen. Wählen Sie eine aus: en English"
    )
    assert "Verwendung: /language [CODE]" in bad
    assert await _chosen(run.app) == "de"


async def test_unbound_chat_answered_in_the_apps_language(start: Start) -> None:  # noqa: F811
    run = await start()
    reply = await _ask(run, "bonjour", language="fr-FR")
    assert reply.startswith("Ce chat n'est encore lié à aucune organisation. Envoyez /start CODE")
    # A language we do not speak: DEFAULT_LANGUAGE.
    reply = await _ask(run, "hola", language="es")
    assert reply.startswith("This chat is not linked to an organisation yet.")


async def test_without_a_client_language_the_tenants_then_the_default(
    make_app: AppFactory,
) -> None:
    app = await make_app(DEFAULT_LANGUAGE="fr")
    await tenant_with_tokens(app, "acme")
    await bind_console(app, "acme")
    # No language from the channel (as in Slack), none on the tenant: DEFAULT_LANGUAGE.
    assert (await say(app, "/new")).texts == ["Nouvelle conversation commencée."]
    await admin(app, "tenant", "set", "acme", "--language", "de")
    assert (await say(app, "/new")).texts == ["Eine neue Unterhaltung hat begonnen."]
    # The member's own choice beats the tenant's.
    assert (await say(app, "/language en")).texts == ["Replies are now in English."]
    assert (await say(app, "/new")).texts == ["Started a new conversation."]
    assert (await say(app, "/new", user="u2")).texts == ["Eine neue Unterhaltung hat begonnen."]


async def test_welcome_after_start_in_the_joined_tenants_language(start: Start) -> None:  # noqa: F811
    """Before /start the chat has no tenant, so its language cannot count; the welcome that
    follows the join is written in it when the app gives none (a given one still wins)."""
    run = await start()
    code = await tenant_with_tokens(run.app, "dupont")
    await admin(run.app, "tenant", "set", "dupont", "--language", "fr", "--name", "Dupont SARL")
    reply = await _ask(run, f"/start {code}", language="")
    assert reply == (
        "Bienvenue ! Ce chat est désormais lié à Dupont SARL. Écrivez un message pour parler à "
        "votre assistant, ou consultez /help."
    )
    english = FRENCH + 1  # a second member of the same tenant, their app set to English
    code = (await admin(run.app, "tenant", "invite", "dupont")).data["invite_code"]
    await run.fake.send_update(_from(run.fake, english, f"/start {code}", "en"))
    [reply] = [m.text for m in await run.fake.wait_for_bot_messages(english)]
    assert reply == (
        "Welcome! This chat is now linked to Dupont SARL. "
        "Write a message to talk to your assistant, or see /help."
    )


async def test_a_wrong_invite_code_is_refused_in_the_apps_language(start: Start) -> None:  # noqa: F811
    run = await start()
    assert await _ask(run, "/start NOPE-NOPE") == "Ce code d'invitation n'est pas valide."
    code = await tenant_with_tokens(run.app, "dupont")
    await _ask(run, f"/start {code}", language="de")
    await run.fake.send_update(_from(run.fake, FRENCH + 2, f"/start {code}", "de"))
    [reply] = [m.text for m in await run.fake.wait_for_bot_messages(FRENCH + 2)]
    assert reply == "Dieser Einladungscode wurde bereits verwendet."

"""The operator's console in the reader's language (DESIGN §9): /assistant, /library, /export,
/pack, /plan, /payments, /invoice and /config answer a French or German admin or member in
their language through the fake Telegram, while command names, slugs and --json stay English."""

from __future__ import annotations

from typing import Any

from tests.conftest import tenant_with_tokens
from tests.fakes.telegram_server import FakeTelegramServer, StoredMessage
from tests.test_telegram import Running, Start, start, telegram  # noqa: F401 (fixtures)

READER = 440066


def _from(fake: FakeTelegramServer, text: str, language: str) -> dict[str, Any]:
    update = fake.private_message(READER, text, first_name="Jeanne")
    update["message"]["from"]["language_code"] = language
    return update


async def _reply(run: Running, text: str, language: str) -> StoredMessage:
    """The bot's next message (a text or a file with its caption) to ``text``."""
    before = len(run.fake.chat_messages(READER))
    await run.fake.send_update(_from(run.fake, text, language))
    await run.fake.wait_for(lambda: len(run.fake.chat_messages(READER)) > before)
    return run.fake.chat_messages(READER)[-1]


async def _ask(run: Running, text: str, language: str = "fr") -> str:
    reply = await _reply(run, text, language)
    assert reply.text is not None, reply
    return reply.text


async def test_french_admin_assistants_library_and_export(start: Start) -> None:  # noqa: F811
    run = await start(SUPERADMINS=f"telegram:{READER}")
    code = await tenant_with_tokens(run.app, "dupont")
    await _ask(run, f"/start {code}")

    assert await _ask(run, "/assistant disable analyst") == "analyst désactivé."
    listed = (await _ask(run, "/assistant list")).splitlines()
    assert any(line.startswith("analyst ") and line.endswith(" (désactivé)") for line in listed)
    assert await _ask(run, "/assistant enable analyst --tenant dupont") == (
        "analyst@dupont activé."
    )
    exists = await _ask(run, "/assistant create general --name G --prompt p")
    assert exists.splitlines()[0] == "L'assistant « general » existe déjà."
    override = await _ask(run, "/assistant override general --tenant dupont")
    assert override == (
        "general pour dupont, actuellement : nom General assistant (son propre nom) ; "
        "prompt système celui de l'assistant."
    )
    stats = await _ask(run, "/assistant stats 30d")
    assert "30 derniers jours (du " in stats
    assert "utilisations" in stats and "ms p95" in stats and "réussite" in stats

    assert await _ask(run, "/library") == "La bibliothèque est encore vide."
    assert await _ask(run, "/library archived") == "Aucun élément archivé."
    assert await _ask(run, "/library chat") == "Aucun résultat."

    export = await _reply(run, "/export ledger dupont", "fr")
    assert export.document is not None
    assert export.caption == "Export du journal des jetons (dupont, depuis le début) : 1 ligne"
    refused = await _ask(run, "/export usage --out x.csv")
    assert refused.splitlines()[0] == (
        "--out FILE est réservé au shell ; dans un chat, le fichier est envoyé directement."
    )

    # The same replies for an English app, exactly as before.
    assert await _ask(run, "/library archived", "en") == "Nothing archived."
    export = await _reply(run, "/export ledger dupont", "en")
    assert export.caption == "Ledger export (dupont, all time): 1 row"

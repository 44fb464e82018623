"""The Telegram command menu (``setMyCommands``), built from the command registry.

Everyone sees the member commands (default scope); each platform admin known on Telegram gets,
in their private chat with the bot, the member commands plus the admin commands their role may
run. Telegram menus hold one word per command, so ``/tenant create`` and ``/tenant list``
appear as one ``/tenant`` entry listing its subcommands.

Each menu is published in English (for every client language) and again in French and German
(``language_code``), so a Telegram app set to either shows the descriptions in its language.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from admin_commands.registry import Caller, Command, CommandRegistry
from core.i18n import LANGUAGES, SOURCE_LANGUAGE, Translator, Translators
from handlers.telegram.adapter import CHANNEL
from storage.db import Sessions
from storage.repositories.admins import AdminRepository

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
#: Aliases that exist for other channels (``/join`` is Slack's ``/sb join``; ``/start`` here).
_HIDDEN = frozenset({"join"})
_MAX_COMMANDS = 100
_DESCRIPTION_LIMIT = 256


def menu_for(
    registry: CommandRegistry, caller: Caller, t: Translator | None = None
) -> list[BotCommand]:
    """One entry per top-level command the caller may run, in registry order, described in
    ``t``'s language (subcommand names stay as they are typed)."""
    groups: dict[str, list[Command]] = {}
    for command in registry:
        name = command.path[0]
        if name in _HIDDEN or not _NAME.match(name) or not _offered(command, caller):
            continue
        groups.setdefault(name, []).append(command)
    return [
        BotCommand(command=name, description=_describe(name, commands, t))
        for name, commands in groups.items()
    ][:_MAX_COMMANDS]


def _offered(command: Command, caller: Caller) -> bool:
    if command.audience == "admin":
        return command.visible_to(caller)
    return True  # public and member commands: the menu is shown before any binding


def _describe(name: str, commands: list[Command], t: Translator | None) -> str:
    if len(commands) == 1 and len(commands[0].path) == 1:
        summary = commands[0].summary
        text = (t(summary) if t is not None and summary else summary) or name
    else:
        subcommands = [" ".join(c.path[1:]) for c in commands if len(c.path) > 1]
        text = ", ".join(subcommands) or name
    return text[:_DESCRIPTION_LIMIT]


async def publish_menus(
    bot: Bot, registry: CommandRegistry, sessions: Sessions, translators: Translators | None = None
) -> None:
    """Set the default menu and one per Telegram admin, each in every language; one admin's
    failure (they never opened a chat with the bot) must not stop the others or the start-up."""
    languages = _languages(translators)
    member = Caller(channel=CHANNEL, user_id="")
    for code, t in languages:
        await bot.set_my_commands(
            menu_for(registry, member, t), scope=BotCommandScopeDefault(), language_code=code
        )
    async with sessions() as session:
        admins = [
            (a.external_id, a.role)
            for a in await AdminRepository(session).list()
            if a.channel == CHANNEL
        ]
    for chat_id, role in _numeric(admins):
        caller = Caller(channel=CHANNEL, user_id=str(chat_id), role=role)
        try:
            for code, t in languages:
                await bot.set_my_commands(
                    menu_for(registry, caller, t),
                    scope=BotCommandScopeChat(chat_id=chat_id),
                    language_code=code,
                )
        except TelegramAPIError as exc:
            log.warning("could not set the admin menu for telegram:%s: %s", chat_id, exc.message)


def _languages(translators: Translators | None) -> list[tuple[str | None, Translator | None]]:
    """The menus to publish: English for every client language (no ``language_code``), then
    each other language for the apps set to it."""
    if translators is None:
        return [(None, None)]
    return [(None, translators.get(SOURCE_LANGUAGE))] + [
        (code, translators.get(code)) for code in LANGUAGES if code != SOURCE_LANGUAGE
    ]


def _numeric(admins: Iterable[tuple[str, str]]) -> list[tuple[int, str]]:
    """Telegram user ids are numbers; anything else cannot be a private chat id."""
    return [(int(ident), role) for ident, role in admins if ident.lstrip("-").isdigit()]

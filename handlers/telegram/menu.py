"""The Telegram command menu (``setMyCommands``), built from the command registry.

Everyone sees the member commands (default scope); each platform admin known on Telegram gets,
in their private chat with the bot, the member commands plus the admin commands their role may
run. Telegram menus hold one word per command, so ``/tenant create`` and ``/tenant list``
appear as one ``/tenant`` entry listing its subcommands.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.types import BotCommand, BotCommandScopeChat, BotCommandScopeDefault

from admin_commands.registry import Caller, Command, CommandRegistry
from handlers.telegram.adapter import CHANNEL
from storage.db import Sessions
from storage.repositories.admins import AdminRepository

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
#: Aliases that exist for other channels (``/join`` is Slack's ``/sb join``; ``/start`` here).
_HIDDEN = frozenset({"join"})
_MAX_COMMANDS = 100
_DESCRIPTION_LIMIT = 256


def menu_for(registry: CommandRegistry, caller: Caller) -> list[BotCommand]:
    """One entry per top-level command the caller may run, in registry order."""
    groups: dict[str, list[Command]] = {}
    for command in registry:
        name = command.path[0]
        if name in _HIDDEN or not _NAME.match(name) or not _offered(command, caller):
            continue
        groups.setdefault(name, []).append(command)
    return [
        BotCommand(command=name, description=_describe(name, commands))
        for name, commands in groups.items()
    ][:_MAX_COMMANDS]


def _offered(command: Command, caller: Caller) -> bool:
    if command.audience == "admin":
        return command.visible_to(caller)
    return True  # public and member commands: the menu is shown before any binding


def _describe(name: str, commands: list[Command]) -> str:
    if len(commands) == 1 and len(commands[0].path) == 1:
        text = commands[0].summary or name
    else:
        subcommands = [" ".join(c.path[1:]) for c in commands if len(c.path) > 1]
        text = ", ".join(subcommands) or name
    return text[:_DESCRIPTION_LIMIT]


async def publish_menus(bot: Bot, registry: CommandRegistry, sessions: Sessions) -> None:
    """Set the default menu and one per Telegram admin; one admin's failure (they never
    opened a chat with the bot) must not stop the others or the start-up."""
    member_menu = menu_for(registry, Caller(channel=CHANNEL, user_id=""))
    await bot.set_my_commands(member_menu, scope=BotCommandScopeDefault())
    async with sessions() as session:
        admins = [
            (a.external_id, a.role)
            for a in await AdminRepository(session).list()
            if a.channel == CHANNEL
        ]
    for chat_id, role in _numeric(admins):
        menu = menu_for(registry, Caller(channel=CHANNEL, user_id=str(chat_id), role=role))
        try:
            await bot.set_my_commands(menu, scope=BotCommandScopeChat(chat_id=chat_id))
        except TelegramAPIError as exc:
            log.warning("could not set the admin menu for telegram:%s: %s", chat_id, exc.message)


def _numeric(admins: Iterable[tuple[str, str]]) -> list[tuple[int, str]]:
    """Telegram user ids are numbers; anything else cannot be a private chat id."""
    return [(int(ident), role) for ident, role in admins if ident.lstrip("-").isdigit()]

"""One command registry for every channel and for ``switchboard admin``.

A command is an async function registered under a path (``"tenant create"``); its docstring's
first line is its help text, its ``usage`` line is what wrong arguments get back. Arguments are
parsed with :mod:`argparse`, so options look the same in Telegram, Slack and the shell.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from admin_commands.roles import minimum_role, permissions_of
from bot.errors import PermissionDenied, UsageError
from handlers.envelope import OutboundFile
from storage.models import Member, Tenant

if TYPE_CHECKING:
    from handlers.services import Services

Audience = Literal["public", "member", "admin"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who runs a command, from where."""

    channel: str
    user_id: str
    role: str | None = None
    tenant: Tenant | None = None
    member: Member | None = None
    chat_key: str = ""
    thread_key: str = ""
    scope_key: str = ""
    is_private: bool = True
    user_name: str | None = None

    @property
    def actor(self) -> str:
        return f"{self.channel}:{self.user_id}"

    def can(self, permission: str) -> bool:
        return permission in permissions_of(self.role)


@dataclass(slots=True)
class CommandResult:
    text: str
    #: The machine-readable form printed by ``switchboard admin --json``.
    data: Any = None
    files: list[OutboundFile] = field(default_factory=list)
    #: False when the command ran but found a problem (``ledger verify``): the shell exits 1.
    ok: bool = True


@dataclass(frozen=True, slots=True)
class Arg:
    """One argparse argument: ``Arg("slug")``, ``Arg("--name", required=True)``."""

    names: tuple[str, ...]
    options: dict[str, Any]

    def __init__(self, *names: str, **options: Any) -> None:
        object.__setattr__(self, "names", names)
        object.__setattr__(self, "options", options)


@dataclass(slots=True)
class CommandContext:
    caller: Caller
    services: Services
    args: argparse.Namespace
    command: Command

    @property
    def tenant(self) -> Tenant:
        """The caller's tenant; member commands are only dispatched when there is one."""
        assert self.caller.tenant is not None
        return self.caller.tenant


Handler = Callable[[CommandContext], Awaitable[CommandResult]]


class _Parser(argparse.ArgumentParser):
    def __init__(self, usage: str, **kwargs: Any) -> None:
        super().__init__(add_help=False, exit_on_error=False, **kwargs)
        self.usage_line = usage

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.usage_line, message[:1].upper() + message[1:] + ".")


@dataclass(slots=True)
class Command:
    path: tuple[str, ...]
    usage: str
    audience: Audience
    permission: str | None
    handler: Handler
    arguments: Sequence[Arg]
    #: Whether it may run from a chat that is not bound to any tenant.
    unbound_ok: bool

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def summary(self) -> str:
        doc = (self.handler.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        parser = _Parser(self.usage, prog="/" + self.name)
        for arg in self.arguments:
            parser.add_argument(*arg.names, **arg.options)
        try:
            return parser.parse_args(list(argv))
        except argparse.ArgumentError as exc:
            parser.error(str(exc))

    def visible_to(self, caller: Caller) -> bool:
        if self.audience == "admin":
            return self.permission is not None and caller.can(self.permission)
        if self.audience == "member":
            return caller.tenant is not None
        return True


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[tuple[str, ...], Command] = {}

    def command(
        self,
        path: str,
        *,
        usage: str,
        audience: Audience = "admin",
        permission: str | None = None,
        arguments: Sequence[Arg] = (),
        unbound_ok: bool = False,
    ) -> Callable[[Handler], Handler]:
        if audience == "admin" and permission is None:
            raise ValueError(f"admin command {path!r} needs a permission")

        def register(handler: Handler) -> Handler:
            key = tuple(path.split())
            if key in self._commands:
                raise ValueError(f"command {path!r} registered twice")
            self._commands[key] = Command(
                key,
                usage,
                audience,
                permission,
                handler,
                arguments,
                unbound_ok or audience == "admin",
            )
            return handler

        return register

    def __iter__(self) -> Any:
        return iter(sorted(self._commands.values(), key=lambda c: c.path))

    def groups(self) -> set[str]:
        return {path[0] for path in self._commands}

    def resolve(self, argv: Sequence[str]) -> tuple[Command, list[str]] | None:
        """The longest registered path prefixing ``argv``: ``tenant create`` beats ``tenant``."""
        for length in range(min(len(argv), 3), 0, -1):
            command = self._commands.get(tuple(a.lower() for a in argv[:length]))
            if command is not None:
                return command, list(argv[length:])
        return None

    def usages_for(self, group: str, caller: Caller) -> list[str]:
        return [c.usage for c in self if c.path[0] == group and c.visible_to(caller)]

    async def dispatch(
        self, argv: Sequence[str], caller: Caller, services: Services
    ) -> CommandResult:
        resolved = self.resolve(argv)
        if resolved is None:
            group = argv[0].lower() if argv else ""
            usages = self.usages_for(group, caller)
            if usages:  # a known group with a wrong or missing subcommand
                raise UsageError(" | ".join(usages))
            return await self.dispatch(["help"], caller, services)
        command, rest = resolved
        self.authorize(command, caller)
        args = command.parse(rest)
        return await command.handler(CommandContext(caller, services, args, command))

    @staticmethod
    def authorize(command: Command, caller: Caller) -> None:
        if command.audience == "admin":
            assert command.permission is not None
            if not caller.can(command.permission):
                raise PermissionDenied(minimum_role(command.permission), "/" + command.name)
        elif (
            command.audience == "member"
            and caller.tenant is None
            and not (command.unbound_ok and caller.role is not None)
        ):
            # Admins outside a tenant's chat may run the read-only ones with --tenant.
            raise UsageError(
                command.usage,
                "This chat is not linked to any organisation yet. "
                "Use /start CODE with the invite code you were given.",
            )


def split_command_line(text: str) -> list[str]:
    """``/tenant create acme --name "Acme Inc"`` → ``["tenant", "create", "acme", ...]``.

    Strips the leading slash and a Telegram ``@botname`` suffix; unbalanced quotes fall back to
    whitespace splitting rather than failing.
    """
    body = text.strip()
    if body.startswith("/"):
        body = body[1:]
    try:
        argv = shlex.split(body)
    except ValueError:
        argv = body.split()
    if argv:
        argv[0] = argv[0].split("@", 1)[0]
    return argv

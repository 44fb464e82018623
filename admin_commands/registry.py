"""One command registry for every channel and for ``switchboard admin``.

A command is an async function declared under a path (``"tenant create"``) with a
:class:`CommandGroup` decorator in its own module; its docstring's first line is its help text
(extracted into the catalogs by :mod:`admin_commands.help_messages`, shown translated by
``/help`` and the Telegram menu). Arguments are parsed with :mod:`argparse`, so options look the
same in Telegram, Slack and the shell, and the usage line that wrong arguments get back is the
parser's own; its refusals are translated when shown (:func:`_parser_problem`).
"""

from __future__ import annotations

import argparse
import copy
import re
import shlex
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn, TypeVar

from admin_commands.deps import CommandDeps
from admin_commands.roles import minimum_role, permissions_of
from core.envelope import ActivitySink, LinkButton, OutboundFile
from core.errors import PermissionDenied, SwitchboardError, UsageError
from core.i18n import N_, Text, Translator, lazy
from storage.models import Member, Tenant
from storage.repositories.admins import AuditRepository

Audience = Literal["public", "member", "admin"]
T = TypeVar("T")
#: The ``channel`` of ``switchboard admin`` callers.
SHELL_CHANNEL = "shell"
#: The option by which an admin names the tenant of a member command (``/usage --tenant acme``):
#: members never need it, so their help and usage lines leave it out.
ADMIN_TENANT_OPTION = "--tenant"
#: Public commands that link the chat they are sent from: meaningless in the shell.
_CHAT_ONLY: frozenset[tuple[str, ...]] = frozenset({("start",), ("join",)})


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
    #: The language replies are written in (DESIGN §9: /language, else the chat client's, else
    #: the tenant's, else DEFAULT_LANGUAGE); "" for DEFAULT_LANGUAGE (the shell).
    language: str = ""
    #: The chat client's own language (Telegram's ``language_code``), "" when it gives none:
    #: /start resolves the welcome again once it knows the tenant joined.
    client_language: str = ""

    @property
    def actor(self) -> str:
        return f"{self.channel}:{self.user_id}"

    @property
    def in_shell(self) -> bool:
        """``switchboard admin``: no chat, so nothing to link and no chat of its own."""
        return self.channel == SHELL_CHANNEL

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
    #: Links shown as buttons under ``text`` (payment links); plain URLs in a terminal.
    buttons: list[LinkButton] = field(default_factory=list)
    #: From the shell, the command's real output (an export's CSV): printed to stdout in
    #: place of ``text``, which then goes to stderr.
    output: OutboundFile | None = None


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
    deps: CommandDeps
    args: argparse.Namespace
    command: Command
    #: The registry that dispatched the command (``/help`` lists it).
    registry: CommandRegistry
    #: The reply sink's activity ("uploading photo…") when the chat has one; None elsewhere.
    activity: ActivitySink | None = None

    async def show_activity(self, action: str) -> None:
        """Show ``action`` in the chat while a slow command works (nothing where unsupported)."""
        if self.activity is not None:
            await self.activity.show_activity(action)

    @property
    def tenant(self) -> Tenant:
        """The caller's tenant; member commands are only dispatched when there is one."""
        assert self.caller.tenant is not None
        return self.caller.tenant

    def usage_error(self, problem: str | Text | None = None) -> UsageError:
        """A :class:`UsageError` carrying this command's generated usage line."""
        return UsageError(self.command.usage, problem)

    def convert(self, label: str, parse: Callable[[str], T], raw: str) -> T:
        """``parse(raw)`` with an argument type of :mod:`admin_commands.values`, for a value the
        parser cannot type by itself (it depends on another argument, or spans several words).
        A refusal is a usage error naming ``label``, as the parser's own refusals do
        (``"Argument REASON"`` reads as they do, in every language)."""
        try:
            return parse(raw)
        except argparse.ArgumentTypeError as exc:
            found = _type_problem(exc)
            argument = label.removeprefix("Argument ")
            problem = (
                lazy("Argument {argument}: {problem}.", argument=argument, problem=found)
                if argument != label
                else lazy("{label}: {problem}.", label=label, problem=found)
            )
            raise UsageError(self.command.usage, problem) from None


Handler = Callable[[CommandContext], Awaitable[CommandResult]]


class UnknownCommand(SwitchboardError):
    """A command name nothing is registered under (``/frobnicate``): said so, with where to
    find the commands (the shell exits 1 on it)."""

    def __init__(self, name: str, in_shell: bool) -> None:
        shown_name = name if len(name) <= 40 else name[:39] + "…"
        message = (
            N_(
                "Unknown command '{name}'. "
                "Run `switchboard admin help` for the commands you can run."
            )
            if in_shell
            else N_("Unknown command '{name}'. Send /help for the commands you can run.")
        )
        super().__init__(
            f"unknown command {shown_name!r}", user_message=lazy(message, name=shown_name)
        )


def _type_problem(exc: argparse.ArgumentTypeError) -> Text | str:
    """What an argument type of :mod:`admin_commands.values` said: a message translated when
    shown (``ArgumentTypeError(lazy(...))``), or a plain string."""
    found = exc.args[0] if exc.args else str(exc)
    return found if isinstance(found, Text) else str(found)


#: argparse's own refusals (Python 3.11's wording), each as a message of the catalogs; what
#: matches none of them is shown as argparse wrote it.
_PARSER_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"the following arguments are required: (?P<names>.+)"),
        N_("The following arguments are required: {names}."),
    ),
    (
        re.compile(r"unrecognized arguments: (?P<words>.*)"),
        N_("Unrecognized arguments: {words}."),
    ),
    (
        re.compile(
            r"argument (?P<argument>\S+): invalid choice: (?P<value>.+) "
            r"\(choose from (?P<choices>.+)\)"
        ),
        N_("Argument {argument}: invalid choice: {value} (choose from {choices})."),
    ),
    (
        re.compile(r"argument (?P<argument>\S+): expected one argument"),
        N_("Argument {argument}: expected one argument."),
    ),
    (
        re.compile(r"argument (?P<argument>\S+): invalid (?P<type>\w+) value: (?P<value>.+)"),
        N_("Argument {argument}: invalid {type} value: {value}."),
    ),
)


def _parser_problem(message: str) -> Text | str:
    """argparse's ``message`` as the sentence users see (capitalised, with a full stop),
    translatable when it is one of :data:`_PARSER_PROBLEMS`."""
    for pattern, msgid in _PARSER_PROBLEMS:
        found = pattern.fullmatch(message)
        if found is not None:
            return lazy(msgid, **found.groupdict())
    return message[:1].upper() + message[1:] + "."


class _OneLineFormatter(argparse.HelpFormatter):
    """Usage lines go into chat messages: never wrap them at the terminal's width."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100_000)


class _Parser(argparse.ArgumentParser):
    """Raises :class:`UsageError` instead of printing and exiting; never wraps the usage line."""

    def __init__(self, prog: str) -> None:
        super().__init__(
            prog=prog,
            add_help=False,
            exit_on_error=False,
            formatter_class=_OneLineFormatter,
        )

    @property
    def usage_line(self) -> str:
        text = self.format_usage().strip()
        return text.removeprefix("usage:").strip()

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.usage_line, _parser_problem(message))


class Command:
    """One registered command: its path, who may run it, its parser and its handler."""

    def __init__(
        self,
        path: tuple[str, ...],
        audience: Audience,
        permission: str | None,
        handler: Handler,
        arguments: Sequence[Arg],
        unbound_ok: bool,
    ) -> None:
        self.path = path
        self.audience = audience
        self.permission = permission
        self.handler = handler
        #: Whether it may run from a chat that is not bound to any tenant.
        self.unbound_ok = unbound_ok
        doc = (handler.__doc__ or "").strip()
        #: The docstring's first line, in English (``/help`` shows it translated, see
        #: :meth:`seen_by`; ``docs/commands.md`` as it is).
        self.summary = doc.splitlines()[0] if doc else ""
        self._parser = _Parser("/" + self.name)
        for arg in arguments:
            self._parser.add_argument(*arg.names, **_with_metavar(arg))
        #: Generated by argparse, so it can never disagree with what the parser accepts.
        self.usage = self._parser.usage_line
        #: Whether an admin may run it for any tenant with ``--tenant`` (from the shell too).
        self.takes_tenant = any(ADMIN_TENANT_OPTION in arg.names for arg in arguments)
        member_view = _Parser("/" + self.name)
        for arg in arguments:
            if ADMIN_TENANT_OPTION not in arg.names:
                member_view.add_argument(*arg.names, **_with_metavar(arg))
        #: The usage line a member sees: the same, without the admins' ``--tenant``.
        self.member_usage = member_view.usage_line

    def __repr__(self) -> str:
        return f"Command({self.name!r})"

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def parse(self, argv: Sequence[str]) -> argparse.Namespace:
        try:
            return self._parser.parse_args(self._attach_values(argv))
        except argparse.ArgumentError as exc:
            if exc.argument_name and isinstance(exc.__context__, argparse.ArgumentTypeError):
                # A type of admin_commands.values refused the value: its own words, translated.
                problem = lazy(
                    "Argument {argument}: {problem}.",
                    argument=exc.argument_name,
                    problem=_type_problem(exc.__context__),
                )
                raise UsageError(self.usage, problem) from None
            self._parser.error(str(exc))

    def usage_for(self, caller: Caller) -> str:
        """The usage line as ``caller`` may use it: members do not see ``--tenant``."""
        return self.usage if caller.role is not None else self.member_usage

    def _attach_values(self, argv: Sequence[str]) -> list[str]:
        """``--name -2+3`` → ``--name=-2+3``: a value after an option that takes one is that
        option's value, even when it starts with ``-`` (argparse would read it as an option)."""
        takes_value = {
            option
            for action in self._parser._actions
            if action.nargs is None and action.option_strings
            for option in action.option_strings
        }
        words = list(argv)
        joined: list[str] = []
        index = 0
        while index < len(words):
            word = words[index]
            following = words[index + 1] if index + 1 < len(words) else None
            if (
                word in takes_value
                and following is not None
                and following.startswith("-")
                and following not in self._parser._option_string_actions
            ):
                joined.append(f"{word}={following}")
                index += 2
                continue
            joined.append(word)
            index += 1
        return joined

    def visible_to(self, caller: Caller) -> bool:
        """Whether ``caller`` can run it from where they are (``/help`` lists only those)."""
        if self.audience == "admin":
            return self.permission is not None and caller.can(self.permission)
        if caller.in_shell:
            # The shell has no chat: no chat to link, and member commands only for a named
            # tenant (``usage --tenant acme``).
            if self.audience == "public":
                return self.path not in _CHAT_ONLY
            return self.unbound_ok and self.takes_tenant and caller.role is not None
        if self.audience == "member":
            return caller.tenant is not None or (
                self.unbound_ok and self.takes_tenant and caller.role is not None
            )
        return True

    def seen_by(self, caller: Caller, t: Translator | None = None) -> Command:
        """This command as ``caller`` sees it: ``usage`` is their usage line, ``summary`` in
        ``t``'s language."""
        view = copy.copy(self)
        view.usage = self.usage_for(caller)
        if t is not None and self.summary:
            view.summary = t(self.summary)
        return view


def _with_metavar(arg: Arg) -> dict[str, Any]:
    """Positionals read as ``SLUG`` in usage lines, as options' values already do."""
    options = dict(arg.options)
    positional = not arg.names[0].startswith("-")
    if positional and "metavar" not in options and "choices" not in options:
        options["metavar"] = arg.names[0].upper()
    return options


class CommandGroup:
    """The commands of one module, declared on their functions (aiogram's ``Router``, errbot's
    ``botcmd``); :meth:`CommandRegistry.include` takes them all::

        commands = CommandGroup()

        @commands.command("tenant show", permission="stats.read", arguments=[Arg("slug")])
        async def show(ctx: CommandContext) -> CommandResult:
            \"\"\"A tenant's status, balance and this month's usage.\"\"\"
    """

    def __init__(self) -> None:
        self.commands: list[Command] = []

    def command(
        self,
        path: str,
        *,
        audience: Audience = "admin",
        permission: str | None = None,
        arguments: Sequence[Arg] = (),
        unbound_ok: bool = False,
    ) -> Callable[[Handler], Handler]:
        if audience == "admin" and permission is None:
            raise ValueError(f"admin command {path!r} needs a permission")

        def register(handler: Handler) -> Handler:
            self.commands.append(
                Command(
                    tuple(path.split()),
                    audience,
                    permission,
                    handler,
                    arguments,
                    unbound_ok or audience == "admin",
                )
            )
            return handler

        return register


class CommandRegistry:
    def __init__(self) -> None:
        self._commands: dict[tuple[str, ...], Command] = {}

    def include(self, group: CommandGroup) -> None:
        for command in group.commands:
            if command.path in self._commands:
                raise ValueError(f"command {command.name!r} registered twice")
            self._commands[command.path] = command

    def __iter__(self) -> Iterator[Command]:
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
        return [c.usage_for(caller) for c in self if c.path[0] == group and c.visible_to(caller)]

    def seen_by(self, caller: Caller, t: Translator | None = None) -> CommandRegistry:
        """The commands ``caller`` can run, with their usage lines as ``caller`` may use them
        and their descriptions in ``t``'s language: what ``/help`` lists."""
        view = CommandRegistry()
        view._commands = {
            path: command.seen_by(caller, t)
            for path, command in self._commands.items()
            if command.visible_to(caller)
        }
        return view

    async def dispatch(
        self,
        argv: Sequence[str],
        caller: Caller,
        deps: CommandDeps,
        activity: ActivitySink | None = None,
    ) -> CommandResult:
        resolved = self.resolve(argv)
        if resolved is None:
            if not argv:
                return await self.dispatch(["help"], caller, deps)
            group = argv[0].lower()
            usages = self.usages_for(group, caller)
            if usages:  # a known group with a wrong or missing subcommand
                raise UsageError(" | ".join(usages))
            raise UnknownCommand(argv[0], caller.in_shell)
        command, rest = resolved
        try:
            self.authorize(command, caller)
            args = command.parse(rest)
            # /help lists the registry as the caller sees it.
            registry = (
                self.seen_by(caller, deps.translators.get(caller.language))
                if command.path == ("help",)
                else self
            )
            context = CommandContext(caller, deps, args, command, registry, activity)
            return await command.handler(context)
        except PermissionDenied as refused:
            await _audit_refusal(deps, caller, refused)
            raise

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
                lazy(
                    "This chat is not linked to any organisation yet. "
                    "Use /start CODE with the invite code you were given."
                ),
            )


async def _audit_refusal(deps: CommandDeps, caller: Caller, refused: PermissionDenied) -> None:
    """A refused attempt is an admin action too: who tried what, and which role it needs.

    Written in a transaction of its own, since the refused command wrote nothing.
    """
    tenant_id = caller.tenant.id if caller.tenant is not None else None
    async with deps.sessions.begin() as session:
        await AuditRepository(session).record(
            caller.actor,
            "permission.denied",
            refused.action,
            after={"role": caller.role, "needs": refused.needed_role},
            tenant_id=tenant_id,
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

"""The ``switchboard`` command line (also ``python -m bot``)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from admin_commands.registry import SHELL_CHANNEL, Caller
from bot.app import App, build_app, prepare_database
from bot.settings import Settings, load_settings
from core.envelope import OutboundFile
from core.errors import ConfigurationError, SwitchboardError, UsageError
from core.i18n import lazy
from handlers.console import CHANNEL, ConsoleSink, console_scope, plain_text, run_console
from storage import migrate
from storage.models import Tenant
from storage.repositories.tenants import BindingRepository, TenantRepository

log = logging.getLogger(__name__)


def shell_caller() -> Caller:
    """``switchboard admin`` runs as super admin, audited as ``shell:<OS user>``."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):  # no login name in the environment nor the password database
        user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return Caller(channel=SHELL_CHANNEL, user_id=user or "unknown", role="super_admin")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="switchboard", description="Chat-first AI assistant service."
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="how much to log on stderr (default INFO)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="migrate, seed and serve every configured channel")
    sub.add_parser("migrate", help="apply database migrations (Alembic upgrade head)")
    doctor = sub.add_parser(
        "doctor", help="check the configuration: providers, channels, Stripe, database"
    )
    doctor.add_argument(
        "--offline", action="store_true", help="check the settings only, contact nothing"
    )
    chat = sub.add_parser("chat", help="talk to a tenant's assistant in the terminal")
    chat.add_argument("--tenant", help="tenant slug (default: the only tenant)")
    chat.add_argument("--user", default="console", help="who is talking (member name)")
    admin = sub.add_parser("admin", help="run an admin command as super admin")
    admin.add_argument("--json", action="store_true", help="print one JSON document")
    admin.add_argument("words", nargs=argparse.REMAINDER, help="the command, e.g. tenant list")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> int:
    args = _parser().parse_args(argv)
    out = stdout or sys.stdout
    _configure_logging(args.log_level)
    try:
        settings = load_settings(environ)
        return asyncio.run(_dispatch(args, settings, stdin or sys.stdin, out))
    except ConfigurationError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        for hint in _hints(args.command, exc.problems):
            print(f"hint: {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (``switchboard admin --json ... | head``): not our error.
        # Point stdout at nothing so the interpreter's final flush stays quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Libraries that log every request or drawing step at INFO: below WARNING only when debugging.
_CHATTY = ("httpx", "httpx2", "httpcore", "httpcore2", "matplotlib", "PIL", "aiosmtplib")


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if level != "DEBUG":
        for name in _CHATTY:
            logging.getLogger(name).setLevel(logging.WARNING)


def _hints(command: str, problems: Sequence[str]) -> list[str]:
    """What a newcomer does next when ``switchboard run`` (or ``chat``) lacks its settings."""
    if command not in ("run", "chat") or not any("configured" in p for p in problems):
        return []
    env_file = Path(".env")
    return [
        (
            "the settings come from the environment or a .env file: "
            + ("edit .env" if env_file.exists() else "copy .env.example to .env")
            + " and fill in what is missing (docs/configuration.md lists every variable)."
        ),
        "to try it without a chat channel, set only a provider, then: "
        "switchboard admin tenant create demo --name Demo && "
        "switchboard admin tokens grant demo 100000 && switchboard chat --tenant demo",
    ]


async def _dispatch(
    args: argparse.Namespace, settings: Settings, stdin: TextIO, out: TextIO
) -> int:
    if args.command == "run":
        problems = settings.service_problems()
        if problems:
            raise ConfigurationError(problems)
    if args.command == "chat" and not settings.configured_providers:
        # Every message would end in "No assistant is enabled": say what is missing instead.
        raise ConfigurationError(
            [
                "No LLM provider configured: set OPENAI_API_KEY / OPENAI_BASE_URL or "
                "ANTHROPIC_API_KEY / ANTHROPIC_BASE_URL."
            ]
        )
    app = build_app(settings)
    try:
        if args.command == "migrate":
            await migrate.upgrade(app.engine)
            print("database is at revision", await migrate.current_revision(app.engine), file=out)
            return 0
        if args.command == "doctor":
            from bot.doctor import Doctor, broken

            findings = await Doctor(app).run(offline=args.offline)
            for finding in findings:
                print(finding.line(), file=out)
            return 1 if broken(findings) else 0
        if args.command == "run":
            from bot.service import serve

            await serve(app)
            return 0
        await prepare_database(app)
        if args.command == "chat":
            return await _chat(app, args.tenant, args.user, stdin, out)
        return await _admin(app, args.words, args.json, out)
    finally:
        await app.aclose()


async def _chat(app: App, slug: str | None, user: str, stdin: TextIO, out: TextIO) -> int:
    async with app.deps.sessions.begin() as session:
        tenants = TenantRepository(session)
        try:
            tenant = await (tenants.get(slug) if slug else _only_tenant(tenants))
        except SwitchboardError as exc:
            # The terminal speaks DEFAULT_LANGUAGE ("error:" stays, as tools write it).
            print(f"error: {exc.localized(app.deps.translators.get(None))}", file=sys.stderr)
            return 2
        slug = tenant.slug
        # Shell access is trusted: the terminal is bound to the tenant it names.
        await BindingRepository(session).bind(tenant, CHANNEL, console_scope(slug))
    media = app.settings.media_dir

    def save(file: OutboundFile) -> str:
        return str(_save(file, media))

    await run_console(
        app.pipeline, slug, user, stdin=stdin, prompt=stdin.isatty(),
        sink=ConsoleSink(out, save, app.deps.translators.get(None)),
    )  # fmt: skip
    return 0


async def _only_tenant(tenants: TenantRepository) -> Tenant:
    found = await tenants.list()
    if len(found) == 1:
        return found[0]
    known = ", ".join(t.slug for t in found) or lazy(
        "none yet: create one with `admin tenant create`"
    )
    raise UsageError(
        "switchboard chat --tenant SLUG", lazy("Which tenant? Known: {known}.", known=known)
    )


def _refused(message: str, as_json: bool, out: TextIO) -> int:
    """A command that did not run: the message on stderr (in the document with ``--json``)."""
    if as_json:
        json.dump({"error": message}, out)
        out.write("\n")
    else:
        print(message, file=sys.stderr)
    return 1


def _database_problem(exc: SQLAlchemyError) -> str:
    """The database's own first line, without SQLAlchemy's statement and parameters (which
    repeat whatever was typed, at any length)."""
    driver_error = getattr(exc, "orig", None) or exc
    lines = str(driver_error).strip().splitlines() or [type(driver_error).__name__]
    # asyncpg's errors read "<class 'asyncpg.exceptions.X'>: message" through SQLAlchemy.
    first = re.sub(r"^<class '[\w.]+'>: ", "", lines[0])
    return f"Database error: {first[:300]}"


async def _admin(app: App, words: list[str], as_json: bool, out: TextIO) -> int:
    if not words:
        words = ["help"]
    try:
        result = await app.registry.dispatch(words, shell_caller(), app.deps)
    except SwitchboardError as exc:
        # --json documents stay English for scripts; a terminal reads DEFAULT_LANGUAGE.
        message = exc.user_message if as_json else exc.localized(app.deps.translators.get(None))
        return _refused(message, as_json, out)
    except SQLAlchemyError as exc:
        # Scripts get one line and exit 1, like any refusal; the traceback is for debugging.
        log.debug("admin command %s failed in the database", words[:2], exc_info=True)
        return _refused(_database_problem(exc), as_json, out)
    files = list(result.files)
    try:
        if as_json:
            # The command's own data is the document, so scripts read e.g. ``.invite_code``;
            # an output that is not JSON (an export's CSV) is saved like any file.
            document = result.data if result.data is not None else {"text": result.text}
            json.dump(document, out, default=str, indent=2)
            out.write("\n")
            files += [result.output] if result.output is not None else []
        elif result.output is not None:
            print(result.text, file=sys.stderr)
            _copy_text(result.output, out)
        else:
            print(plain_text(result.text), file=out)
            for button in result.buttons:
                print(f"  {button.label}: {button.url}", file=out)
        for file in files:
            path = _save(file, app.settings.media_dir)
            t = app.deps.translators.get(None)
            print(t("[file saved: {path}]", path=path), file=sys.stderr if as_json else out)
    finally:
        for file in [*result.files, *([result.output] if result.output else [])]:
            file.discard()
    return 0 if result.ok else 1


def _save(file: OutboundFile, directory: Path) -> Path:
    path = directory / Path(file.file_name).name
    path.parent.mkdir(parents=True, exist_ok=True)
    if file.path is not None:
        if path.resolve() != file.path.resolve():  # a library file already in MEDIA_DIR stays
            shutil.copyfile(file.path, path)
    else:
        path.write_bytes(file.data)
    return path


def _copy_text(file: OutboundFile, out: TextIO) -> None:
    """A text file to ``out`` in chunks (an export may be larger than memory)."""
    if file.path is None:
        out.write(file.data.decode())
        return
    with file.path.open(encoding="utf-8", newline="") as source:
        while chunk := source.read(1 << 16):
            out.write(chunk)
    out.flush()

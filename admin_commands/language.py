"""``/language [en|fr|de]``: the language a member's replies are written in (DESIGN §9), and
:func:`translator`, the caller's translator for every command's replies."""

from __future__ import annotations

from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from core.errors import UsageError
from core.i18n import LANGUAGES, Translator, lazy, supported
from storage.models import Member

commands = CommandGroup()


def translator(ctx: CommandContext) -> Translator:
    """The caller's translator: ``t = translator(ctx)``, then ``t("Hello {name}.", name=…)``."""
    return ctx.deps.translators.get(ctx.caller.language)


def _choices() -> str:
    """``en English, fr français, de Deutsch``: each language named in its own words."""
    return ", ".join(f"{code} {_own_name(code)}" for code in LANGUAGES)


def _own_name(code: str) -> str:
    from babel import Locale

    return str(Locale.parse(code).get_display_name(code))


@commands.command("language", audience="member", arguments=[Arg("code", nargs="?")])
async def language(ctx: CommandContext) -> CommandResult:
    """Show or choose the language of your replies (en, fr, de)."""
    t = translator(ctx)
    member = ctx.caller.member
    current = t.language
    if ctx.args.code is None:
        how = (
            t("you chose it with /language")
            if member is not None and member.language
            else t("from your app or your organisation's settings")
        )
        return CommandResult(
            t(
                "Replies are in {language} ({how}). Choose another with /language CODE: {choices}.",
                language=_own_name(current),
                how=how,
                choices=_choices(),
            ),
            data={"language": current, "chosen": member.language if member else None},
        )
    code = supported(ctx.args.code) if len(ctx.args.code) == 2 else None
    if code is None:
        raise UsageError(
            ctx.command.usage,
            lazy(
                "'{code}' is not a language here. Choose one of: {choices}.",
                code=ctx.args.code,
                choices=_choices(),
            ),
        )
    if member is None:  # an admin outside a chat of the tenant: nothing to remember it on
        raise UsageError(
            ctx.command.usage,
            lazy("Only a member of an organisation's chat can choose a language."),
        )
    async with ctx.deps.sessions.begin() as session:
        row = await session.get(Member, member.id)
        assert row is not None
        row.language = code
    chosen = ctx.deps.translators.get(code)  # the confirmation already speaks the new language
    return CommandResult(
        chosen.gettext("Replies are now in {language}.", language=_own_name(code)),
        data={"language": code, "chosen": code},
    )

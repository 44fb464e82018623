"""The operator's texts: ``/config set paysupport|terms TEXT`` (audited), and the member
commands Telegram requires of a bot that sells, ``/paysupport`` and ``/terms``."""

from __future__ import annotations

from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from core.i18n import N_, Number, lazy
from storage.repositories.operator_texts import OperatorTextRepository

commands = CommandGroup()

#: What each key is, and what members read while the operator has not set it.
KEYS = {
    "paysupport": N_(
        "Payment support: write to us about a payment and an administrator will answer. "
        "Refunds are made by an administrator with the payment's number (/invoices)."
    ),
    "terms": N_(
        "Terms of service: tokens bought are credited to your organisation, used by its "
        "assistants and not exchangeable for money; refunds are at the operator's discretion."
    ),
}
#: Telegram caps a message at 4096 characters; the text must fit in one answer.
MAX_TEXT = 3500


@commands.command(
    "config set",
    permission="billing.write",
    arguments=[Arg("key", choices=sorted(KEYS)), Arg("text", nargs="+", metavar="TEXT")],
)
async def config_set(ctx: CommandContext) -> CommandResult:
    """Set the text /paysupport or /terms answers with."""
    key: str = ctx.args.key
    text = " ".join(ctx.args.text).replace("\\n", "\n").strip()
    if not text:
        raise ctx.usage_error(lazy("Give the text."))
    if len(text) > MAX_TEXT:
        raise ctx.usage_error(
            lazy(
                "The text is {count} characters; at most {most}.",
                count=Number(len(text)),
                most=Number(MAX_TEXT),
            )
        )
    async with ctx.deps.sessions.begin() as session:
        before = await OperatorTextRepository(session).set(
            key, text, now=ctx.deps.clock(), actor=ctx.caller.actor
        )
        await audit(
            session, ctx, "config.set", key,
            None if before is None else {"text": before}, {"text": text},
        )  # fmt: skip
    t = translator(ctx)
    return CommandResult(
        t("/{key} now answers:", key=key) + "\n" + text, data={"key": key, "text": text}
    )


async def _text(ctx: CommandContext, key: str) -> CommandResult:
    async with ctx.deps.sessions() as session:
        text = await OperatorTextRepository(session).get(key)
    shown = text or translator(ctx)(KEYS[key])
    return CommandResult(shown, data={"key": key, "text": shown, "set": text is not None})


@commands.command("paysupport", audience="member", unbound_ok=True)
async def paysupport(ctx: CommandContext) -> CommandResult:
    """Help with a payment: who to ask and how refunds work."""
    return await _text(ctx, "paysupport")


@commands.command("terms", audience="member", unbound_ok=True)
async def terms(ctx: CommandContext) -> CommandResult:
    """The terms of service for what this bot sells."""
    return await _text(ctx, "terms")

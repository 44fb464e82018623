"""Token grants and ledger checks."""

from __future__ import annotations

from admin_commands.common import audit
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import note, positive_int, signed_tokens, slug
from core.errors import ConflictError
from core.i18n import lazy
from storage.repositories.ledger import LedgerRepository
from storage.repositories.tenants import TenantRepository

commands = CommandGroup()


@commands.command(
    "tokens grant",
    permission="tokens.grant",
    arguments=[
        Arg("slug", type=slug),
        Arg("amount", type=positive_int, metavar="N"),
        Arg("reason", nargs="*", default=[], metavar="REASON"),
    ],
)
async def grant(ctx: CommandContext) -> CommandResult:
    """Add tokens to a tenant's balance (a ledger grant)."""
    amount: int = ctx.args.amount
    reason = ctx.convert("Argument REASON", note, " ".join(ctx.args.reason)) or "grant"
    deps = ctx.deps
    async with deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        entry = await LedgerRepository(session).post(
            tenant.id, "grant", amount, now=deps.clock(), note=reason, actor=ctx.caller.actor
        )
        await audit(
            session,
            ctx,
            "tokens.grant",
            tenant.slug,
            {"token_balance": entry.balance_after - amount},
            {"token_balance": entry.balance_after, "reason": reason},
            tenant=tenant,
        )
    t = translator(ctx)
    return CommandResult(
        t(
            "Granted {amount} tokens to {slug}; balance {balance}.",
            amount=t.number(amount),
            slug=tenant.slug,
            balance=t.number(entry.balance_after),
        ),
        data={
            "slug": tenant.slug,
            "granted": amount,
            "token_balance": entry.balance_after,
            "ledger_entry": entry.id,
        },
    )


#: The one plan billed after use; every other balance (packs, subscription periods) was paid
#: for in advance, and an adjustment keeps it at or above zero.
_BILLED_AFTER = "postpaid"


@commands.command(
    "tokens adjust",
    permission="tokens.grant",
    arguments=[
        Arg("slug", type=slug),
        Arg("amount", type=signed_tokens, metavar="±N"),
        Arg("reason", nargs="+"),
        Arg("--allow-negative", action="store_true"),
    ],
)
async def adjust(ctx: CommandContext) -> CommandResult:
    """Correct a tenant's balance up or down (a signed ledger adjustment, with its reason)."""
    amount: int = ctx.args.amount
    reason = ctx.convert("Argument REASON", note, " ".join(ctx.args.reason))
    if not reason:
        raise ctx.usage_error(lazy("Give the reason for the adjustment."))
    deps = ctx.deps
    async with deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        floor = 0 if tenant.plan != _BILLED_AFTER and not ctx.args.allow_negative else None
        try:
            entry = await LedgerRepository(session).post(
                tenant.id, "adjustment", amount, now=deps.clock(), note=reason,
                actor=ctx.caller.actor, floor=floor,
            )  # fmt: skip
        except ConflictError as exc:
            if floor is None:
                raise
            raise ConflictError(
                str(exc),
                user_message=lazy(
                    "{problem} A prepaid balance stays at 0 or above: "
                    "add --allow-negative to go below.",
                    problem=exc.message or exc.user_message,
                ),
            ) from None
        await audit(
            session,
            ctx,
            "tokens.adjust",
            tenant.slug,
            {"token_balance": entry.balance_after - amount},
            {"token_balance": entry.balance_after, "adjustment": amount, "reason": reason},
            tenant=tenant,
        )
    t = translator(ctx)
    return CommandResult(
        t(
            "Adjusted {slug} by {amount} tokens ({reason}); balance {before} → {after}.",
            slug=tenant.slug,
            amount=t.number(amount, "+#,##0;-#,##0"),
            reason=reason,
            before=t.number(entry.balance_after - amount),
            after=t.number(entry.balance_after),
        ),
        data={
            "slug": tenant.slug,
            "adjusted": amount,
            "reason": reason,
            "token_balance": entry.balance_after,
            "ledger_entry": entry.id,
        },
    )


@commands.command("ledger verify", permission="ledger.read")
async def verify(ctx: CommandContext) -> CommandResult:
    """Check that every tenant's balance equals the sum of its ledger."""
    async with ctx.deps.sessions() as session:
        checked, mismatches = await LedgerRepository(session).verify()
    data = {
        "ok": not mismatches,
        "tenants_checked": checked,
        "mismatches": [
            {"slug": m.slug, "balance": m.balance, "ledger_sum": m.ledger_sum} for m in mismatches
        ],
    }
    t = translator(ctx)
    if not mismatches:
        return CommandResult(
            t(
                "Ledger OK: {checked} tenants, balances equal ledger sums.",
                checked=t.number(checked),
            ),
            data=data,
        )
    lines = [
        t(
            "Ledger MISMATCH for {count} of {checked} tenants:",
            count=t.number(len(mismatches)),
            checked=t.number(checked),
        )
    ]
    lines += [
        t(
            "{slug}: balance {balance}, ledger {ledger}",
            slug=m.slug,
            balance=t.number(m.balance),
            ledger=t.number(m.ledger_sum),
        )
        for m in mismatches
    ]
    return CommandResult("\n".join(lines), data=data, ok=False)


@commands.command("ledger show", permission="ledger.read", arguments=[Arg("slug", type=slug)])
async def show(ctx: CommandContext) -> CommandResult:
    """The latest ledger entries of a tenant."""
    async with ctx.deps.sessions() as session:
        tenant = await TenantRepository(session).get(ctx.args.slug)
        entries = await LedgerRepository(session).entries(tenant.id)
    t = translator(ctx)
    # Kinds are the ledger's own words (grant, usage, refund...), as --json and /export give them.
    lines = [
        f"{e.created_at:%Y-%m-%d %H:%M} {e.kind:<10} "
        f"{t.number(e.tokens, '+#,##0;-#,##0').rjust(12)} → {t.number(e.balance_after)}"
        f" {e.note}"
        for e in entries
    ] or [t("No ledger entries.")]
    return CommandResult(
        "\n".join(lines),
        data=[
            {
                "id": e.id,
                "kind": e.kind,
                "tokens": e.tokens,
                "balance_after": e.balance_after,
                "reference": e.reference,
                "note": e.note,
                "actor": e.actor,
                "created_at": e.created_at.isoformat(),
            }
            for e in entries
        ],
    )

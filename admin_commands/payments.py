"""Money coming in: ``/buy``, ``/subscribe`` (members) and ``/payments`` (admins)."""

from __future__ import annotations

from typing import Any

from admin_commands.common import audit, reply_address, target_tenant
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import plan_slug, positive_int, slug
from billing.amounts import amount_str, price_label
from billing.stars.amounts import STARS_PROVIDER, stars_label
from billing.stars.invoices import StarsInvoice
from billing.stars.service import StarsPayments
from billing.stripe.checkout import LINK_REUSE, CheckoutLink, CheckoutService
from core.envelope import LinkButton
from core.errors import PaymentUnavailable, SwitchboardError
from core.i18n import N_, Translator, lazy
from core.money import from_micros
from storage.models import Pack, Payment, Tenant
from storage.repositories.catalog import PackRepository, PlanRepository
from storage.repositories.payments import PaymentRepository, SubscriptionRepository
from storage.repositories.tenants import TenantRepository
from storage.states import PAYMENT_STATUSES

commands = CommandGroup()

#: Why a payment that was never received cannot be refunded, per status (each a whole sentence,
#: so the status agrees with the rest of it in every language).
_NOT_RECEIVED = {
    "pending": N_("Payment #{id} is pending: nothing was received, so there is nothing to refund."),
    "expired": N_("Payment #{id} is expired: nothing was received, so there is nothing to refund."),
    "failed": N_("Payment #{id} is failed: nothing was received, so there is nothing to refund."),
}
NOT_CONFIGURED = N_("Payments are not set up on this service yet. Please ask your administrator.")


def price_in(t: Translator, micros: int, currency: str) -> str:
    """``15.00 EUR`` in English as always; ``15,00 EUR`` / ``15,00 EUR`` in French and German."""
    if t.language == "en":
        return price_label(micros, currency)
    return t.money(from_micros(micros), currency)


def _stars_price(t: Translator, stars: int) -> str:
    """``1,500 Stars`` / ``1 500 Stars``."""
    return t.ngettext("{n} Star", "{n} Stars", stars)


def _item_label(t: Translator, name: str, tokens: int, price: str, *, monthly: bool = False) -> str:
    """``Pro: 2,000,000 tokens for 15.00 EUR`` (``/month`` for a subscription)."""
    if monthly:
        return t("{name}: {tokens} tokens for {price}/month", name=name,
                 tokens=t.number(tokens), price=price)  # fmt: skip
    return t("{name}: {tokens} tokens for {price}", name=name, tokens=t.number(tokens),
             price=price)  # fmt: skip


def _link_label(t: Translator, link: CheckoutLink) -> str:
    price = price_in(t, link.amount_micros, link.currency)
    return _item_label(t, link.name, link.tokens, price, monthly=link.kind == "subscription")


def _invoice_label(t: Translator, invoice: StarsInvoice) -> str:
    price = _stars_price(t, invoice.stars)
    return _item_label(
        t, invoice.name, invoice.tokens, price, monthly=invoice.kind == "subscription"
    )


def _checkout(ctx: CommandContext) -> CheckoutService:
    if ctx.deps.checkout is None:
        raise PaymentUnavailable("Stripe is not configured", user_message=lazy(NOT_CONFIGURED))
    return ctx.deps.checkout


def _stars(ctx: CommandContext) -> StarsPayments | None:
    """Stars when Telegram chats pay in Stars (``TELEGRAM_PAYMENTS=stars``) and the caller is
    in one; Slack, the shell and invoices keep Stripe."""
    if ctx.caller.channel == "telegram" and ctx.deps.stars is not None:
        return ctx.deps.stars
    return None


def _stars_json(invoice: StarsInvoice, what: str) -> dict[str, Any]:
    return {
        what: invoice.item,
        "name": invoice.name,
        "tokens": invoice.tokens,
        "amount": str(invoice.stars),
        "currency": "XTR",
        "url": invoice.url or None,
        "payment_id": invoice.payment_id,
    }


async def _buy_stars(
    ctx: CommandContext, stars: StarsPayments, tenant: Tenant, packs: list[Pack]
) -> CommandResult:
    """``/buy`` in Telegram with Stars: the packs and their Stars prices, or the invoice."""
    t = translator(ctx)
    on_sale = [p for p in packs if p.stars]
    wanted: str | None = ctx.args.pack
    if wanted is None:
        if not on_sale:
            return CommandResult(
                t("No token packs are on sale for Telegram Stars right now."), data=[]
            )
        lines = [
            t("Top up {name} (balance {balance} tokens) in Stars:", name=tenant.name,
              balance=t.number(tenant.token_balance))
        ]  # fmt: skip
        lines += [
            t("• /buy {slug}: {name}, {tokens} tokens for {price}", slug=p.slug, name=p.name,
              tokens=t.number(p.tokens), price=_stars_price(t, p.stars or 0))
            for p in on_sale
        ]  # fmt: skip
        data = [
            {"pack": p.slug, "name": p.name, "tokens": p.tokens, "amount": str(p.stars),
             "currency": "XTR"}
            for p in on_sale
        ]  # fmt: skip
        return CommandResult("\n".join(lines), data=data)
    pack = next((p for p in on_sale if p.slug == wanted), None)
    if pack is None:
        names = ", ".join(p.slug for p in on_sale) or t("none")
        raise ctx.usage_error(
            t("No pack '{pack}' on sale for Stars. Packs: {names}.", pack=wanted, names=names)
        )
    address = reply_address(ctx.caller)
    assert address is not None  # a Telegram caller always has a chat
    invoice = await stars.invoices.pack_invoice(
        tenant, pack, reply_to=address, actor=ctx.caller.actor
    )
    return CommandResult(
        t(
            "{label}. Pay the invoice above; the tokens are added as soon as it is paid.",
            label=_invoice_label(t, invoice),
        ),
        data=_stars_json(invoice, "pack"),
    )


def _not_postpaid(tenant: Tenant) -> None:
    if tenant.plan == "postpaid":
        raise SwitchboardError(
            f"{tenant.slug} is postpaid",
            user_message=lazy(
                "This organisation is on the postpaid plan: usage is invoiced monthly, "
                "so there is nothing to buy in advance."
            ),
        )


def _link_json(link: CheckoutLink, what: str) -> dict[str, Any]:
    return {
        what: link.item,
        "name": link.name,
        "tokens": link.tokens,
        "amount": amount_str(link.amount_micros, link.currency),
        "currency": link.currency,
        "url": link.url,
        "session_id": link.session_id,
    }


@commands.command(
    "buy",
    audience="member",
    unbound_ok=True,
    arguments=[Arg("pack", nargs="?", type=slug), Arg("--tenant")],
)
async def buy(ctx: CommandContext) -> CommandResult:
    """Buy a token pack: a payment link for each pack, or for the one named."""
    t = translator(ctx)
    stars = _stars(ctx)
    checkout = _checkout(ctx) if stars is None else None
    async with ctx.deps.sessions() as session:
        # Opening payment sessions for another tenant is a billing action, not a read.
        tenant = await target_tenant(ctx, session, permission="billing.write")
        packs = await PackRepository(session).list(active_only=True)
    _not_postpaid(tenant)
    if stars is not None:
        return await _buy_stars(ctx, stars, tenant, packs)
    assert checkout is not None
    address = reply_address(ctx.caller)
    actor = ctx.caller.actor
    wanted: str | None = ctx.args.pack
    if wanted is None:
        links = await checkout.pack_links(
            tenant, reply_to=address, actor=actor, reuse_within=LINK_REUSE
        )
        if not links:
            return CommandResult(t("No token packs are on sale right now."), data=[])
        lines = [
            t("Top up {name} (balance {balance} tokens):", name=tenant.name,
              balance=t.number(tenant.token_balance))
        ]  # fmt: skip
        lines += [f"• {_link_label(t, link)}" for link in links]
        return CommandResult(
            "\n".join(lines),
            data=[_link_json(link, "pack") for link in links],
            buttons=[LinkButton(_link_label(t, link), link.url) for link in links],
        )
    pack = next((p for p in packs if p.slug == wanted), None)
    if pack is None:
        on_sale = ", ".join(p.slug for p in packs) or t("none")
        raise ctx.usage_error(
            t("No pack '{pack}' on sale. Packs: {names}.", pack=wanted, names=on_sale)
        )
    link = await checkout.recent_pack_link(
        tenant.id, pack, address, LINK_REUSE
    ) or await checkout.pack_link(tenant, pack, reply_to=address, actor=actor)
    return CommandResult(
        t(
            "{label}. Pay with the link; the tokens are added as soon as the payment lands.",
            label=_link_label(t, link),
        ),
        data=_link_json(link, "pack"),
        buttons=[
            LinkButton(
                t("Pay {price}", price=price_in(t, link.amount_micros, link.currency)), link.url
            )
        ],
    )


@commands.command(
    "subscribe",
    audience="member",
    unbound_ok=True,
    arguments=[Arg("plan", type=plan_slug), Arg("--tenant")],
)
async def subscribe(ctx: CommandContext) -> CommandResult:
    """Subscribe to a monthly plan: its tokens are added every paid month."""
    t = translator(ctx)
    stars = _stars(ctx)
    checkout = _checkout(ctx) if stars is None else None
    async with ctx.deps.sessions() as session:
        tenant = await target_tenant(ctx, session, permission="billing.write")
        plans = await PlanRepository(session).list(kind="subscription", active_only=True)
        current = await SubscriptionRepository(session).current(tenant.id)
    plan = next((p for p in plans if p.slug == ctx.args.plan), None)
    if plan is None:
        offered = ", ".join(p.slug for p in plans) or t("none")
        raise ctx.usage_error(
            t("No subscription plan '{plan}'. Plans: {names}.", plan=ctx.args.plan, names=offered)
        )
    if current is not None:
        raise SwitchboardError(
            f"{tenant.slug} already subscribes to {current.plan}",
            user_message=lazy(
                "This organisation already subscribes to the {plan} plan ({status}). "
                "Ask your administrator to change it.",
                plan=current.plan,
                status=current.status,
            ),
        )
    if stars is not None:
        invoice = await stars.invoices.subscription_link(
            tenant, plan, reply_to=reply_address(ctx.caller), actor=ctx.caller.actor
        )
        return CommandResult(
            t(
                "{label}. Subscribe with the link; the tokens are added when each month is paid.",
                label=_invoice_label(t, invoice),
            ),
            data=_stars_json(invoice, "plan") | {"tokens_included": invoice.tokens},
            buttons=[
                LinkButton(
                    t("Subscribe: {price}", price=_stars_price(t, invoice.stars)), invoice.url
                )
            ],
        )
    assert checkout is not None
    link = await checkout.subscription_link(
        tenant, plan, reply_to=reply_address(ctx.caller), actor=ctx.caller.actor
    )
    return CommandResult(
        t(
            "{label}. Subscribe with the link; the tokens are added when each month is paid.",
            label=_link_label(t, link),
        ),
        data=_link_json(link, "plan") | {"tokens_included": link.tokens},
        buttons=[
            LinkButton(
                t("Subscribe: {price}", price=price_in(t, link.amount_micros, link.currency)),
                link.url,
            )
        ],
    )


def payment_json(payment: Payment, tenant_slug: str) -> dict[str, Any]:
    return {
        "id": payment.id,
        "tenant": tenant_slug,
        "kind": payment.kind,
        "item": payment.item,
        "tokens": payment.tokens,
        "amount": amount_str(payment.amount_micros, payment.currency),
        "currency": payment.currency,
        "status": payment.status,
        "provider": payment.provider,
        "session_id": payment.stripe_session_id,
        "telegram_charge_id": payment.telegram_charge_id,
        "invoice_id": payment.stripe_invoice_id,
        "refunded_tokens": payment.refunded_tokens,
        "refunded_amount": amount_str(payment.refunded_micros, payment.currency),
        "error": payment.error,
        "created_at": payment.created_at.isoformat(),
        "paid_at": payment.paid_at.isoformat() if payment.paid_at else None,
    }


def _status_name(t: Translator, status: str) -> str:
    """A payment's status as people read it (the stored word stays English in --json)."""
    names = {
        "pending": t.pgettext("payment", "pending"),
        "paid": t.pgettext("payment", "paid"),
        "refunded": t.pgettext("payment", "refunded"),
        "expired": t.pgettext("payment", "expired"),
        "failed": t.pgettext("payment", "failed"),
    }
    return names.get(status, status)


def payment_line(
    payment: Payment, tenant_slug: str | None = None, t: Translator | None = None
) -> str:
    """One payment on a line; in ``t``'s language when given (kind and item stay English, as
    --json gives them; the provider's error as it came)."""
    who = f"{tenant_slug:<16} " if tenant_slug else ""
    problem = f" — {payment.error}" if payment.error and payment.status == "failed" else ""
    head = f"#{payment.id} {payment.created_at:%Y-%m-%d %H:%M} {who}{payment.kind} {payment.item} "
    if t is None:
        refunded = f" (-{payment.refunded_tokens:,} refunded)" if payment.refunded_tokens else ""
        price = price_label(payment.amount_micros, payment.currency)
        return f"{head}{payment.tokens:,} tokens {price} {payment.status}{refunded}{problem}"
    refunded = (
        " " + t("(-{tokens} refunded)", tokens=t.number(payment.refunded_tokens))
        if payment.refunded_tokens
        else ""
    )
    tokens = t("{tokens} tokens", tokens=t.number(payment.tokens))
    price = price_in(t, payment.amount_micros, payment.currency)
    return f"{head}{tokens} {price} {_status_name(t, payment.status)}{refunded}{problem}"


@commands.command(
    "payments",
    permission="stats.read",
    arguments=[
        Arg("slug", nargs="?"),
        Arg("--status", choices=PAYMENT_STATUSES),
        Arg("--limit", type=positive_int, default=20, metavar="N"),
    ],
)
async def payments(ctx: CommandContext) -> CommandResult:
    """Recent payments, of every tenant or one."""
    async with ctx.deps.sessions() as session:
        tenants = TenantRepository(session)
        tenant = await tenants.get(ctx.args.slug) if ctx.args.slug else None
        rows = await PaymentRepository(session).list(
            tenant_id=tenant.id if tenant else None, status=ctx.args.status, limit=ctx.args.limit
        )
        slugs = {t.id: t.slug for t in await tenants.list()}
    data = [payment_json(p, slugs.get(p.tenant_id, "?")) for p in rows]
    t = translator(ctx)
    if not rows:
        return CommandResult(t("No payments."), data=data)
    lines = [payment_line(p, None if tenant else slugs.get(p.tenant_id, "?"), t) for p in rows]
    return CommandResult("\n".join(lines), data=data)


@commands.command(
    "payments refund", permission="billing.write", arguments=[Arg("id", type=positive_int)]
)
async def refund(ctx: CommandContext) -> CommandResult:
    """Refund a payment in full: Telegram Stars through Telegram, others through Stripe."""
    async with ctx.deps.sessions() as session:
        payment = await PaymentRepository(session).by_id(ctx.args.id)
        if payment is None:
            raise SwitchboardError(
                f"no payment {ctx.args.id}",
                user_message=lazy("No payment #{id}.", id=ctx.args.id),
            )
        tenant = await TenantRepository(session).by_id(payment.tenant_id)
    if payment.status not in ("paid", "refunded"):
        raise SwitchboardError(
            f"payment {payment.id} is {payment.status}",
            user_message=lazy(_NOT_RECEIVED[payment.status], id=payment.id),
        )
    if payment.provider == STARS_PROVIDER:
        return await _refund_stars(ctx, payment, tenant)
    t = translator(ctx)
    if payment.status == "refunded":
        return CommandResult(
            t("Payment #{id} is already refunded.", id=payment.id),
            data=payment_json(payment, tenant.slug),
        )
    refund_id = await _checkout(ctx).refund(payment, actor=ctx.caller.actor)
    async with ctx.deps.sessions.begin() as session:
        await audit(
            session, ctx, "payment.refund", str(payment.id), {"status": payment.status},
            {"provider": "stripe", "refund": refund_id}, tenant=tenant,
        )  # fmt: skip
    price = price_in(t, payment.amount_micros - payment.refunded_micros, payment.currency)
    return CommandResult(
        t(
            "Refund {refund} of {price} asked of Stripe for payment #{id} ({slug}); "
            "the tokens are taken back when Stripe confirms it.",
            refund=refund_id,
            price=price,
            id=payment.id,
            slug=tenant.slug,
        ),
        data=payment_json(payment, tenant.slug) | {"refund_id": refund_id},
    )


async def _refund_stars(ctx: CommandContext, payment: Payment, tenant: Tenant) -> CommandResult:
    stars = ctx.deps.stars
    if stars is None:
        raise PaymentUnavailable(
            "Telegram Stars are not configured",
            user_message=lazy(
                "Telegram Stars payments are not set up on this service "
                "(TELEGRAM_PAYMENTS=stars), so Telegram cannot be asked for this refund."
            ),
        )
    result = await stars.refund(payment.id, actor=ctx.caller.actor)
    async with ctx.deps.sessions.begin() as session:
        if result.tokens is not None:
            await audit(
                session, ctx, "payment.refund", str(payment.id), {"status": payment.status},
                {"provider": STARS_PROVIDER, "tokens": -result.tokens}, tenant=tenant,
            )  # fmt: skip
        row = await PaymentRepository(session).by_id(payment.id)
        assert row is not None
        data = payment_json(row, tenant.slug)
    if result.outbox_ids:
        await ctx.deps.outbox.deliver(result.outbox_ids)
    t = translator(ctx)
    if result.tokens is None:
        return CommandResult(t("Payment #{id} is already refunded.", id=payment.id), data=data)
    paid = payment.amount_micros // 1_000_000
    amount = stars_label(paid) if t.language == "en" else _stars_price(t, paid)
    return CommandResult(
        t(
            "Refunded payment #{id} ({slug}): {amount} returned through Telegram, "
            "{tokens} tokens taken back.",
            id=payment.id,
            slug=tenant.slug,
            amount=amount,
            tokens=t.number(result.tokens),
        ),
        data=data,
    )

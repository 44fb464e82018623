"""``/invoice ...`` for admins and ``/invoices`` for members (DESIGN §8 "Invoices").

Every change goes through :class:`billing.invoicing.service.InvoiceService`, which audits it;
``--json`` of any of these commands is the invoice document (a list of them for ``list`` and
``generate``).
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import date
from decimal import ROUND_DOWN, Decimal

from admin_commands.common import target_tenant
from admin_commands.language import translator
from admin_commands.registry import Arg, CommandContext, CommandGroup, CommandResult
from admin_commands.values import positive_amount, positive_int, quantity, slug, text_of
from billing.amounts import minor_places
from billing.invoicing.arithmetic import line_amount
from billing.invoicing.documents import DocumentDelivery
from billing.invoicing.pdf import pdf_file_name, render_invoice
from billing.invoicing.recipients import tenant_chats
from billing.invoicing.service import LineSpec, check_sendable
from billing.invoicing.views import InvoiceView
from core.envelope import EMAIL_CHANNEL, ChatAddress, LinkButton, OutboundFile
from core.errors import SwitchboardError
from core.i18n import N_, Translator
from core.money import from_micros, to_micros
from core.period import month_bounds, parse_period
from storage.repositories.invoices import InvoiceRepository
from storage.repositories.tenants import TenantRepository
from storage.states import INVOICE_STATUSES

commands = CommandGroup()
WRITE = "invoices.write"
READ = "stats.read"
_NUMBER = re.compile(r"^(INV|CN)-(\d{4})-(\d{4,})$", re.IGNORECASE)


def invoice_number(raw: str) -> str:
    """``INV-2026-0001``, or a credit note's ``CN-2026-0001`` (any case)."""
    value = raw.strip().upper()
    if not _NUMBER.match(value):
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not an invoice number like INV-2026-0001 (or a credit note's CN-2026-0001)"
        )
    return value


def month(raw: str) -> str:
    """``YYYY-MM`` (checked against today by the command)."""
    if not re.match(r"^\d{4}-\d{2}$", raw.strip()):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a month like 2026-10")
    return raw.strip()


_description = text_of(500)
NUMBER = Arg("number", type=invoice_number, metavar="NUMBER")
LINE = [
    Arg("amount", type=positive_amount, metavar="AMOUNT"),
    Arg("description", nargs="+", metavar="DESCRIPTION"),
    Arg("--qty", type=quantity, default=Decimal(1), metavar="N"),
]


def _spec(ctx: CommandContext, currency: str | None) -> LineSpec:
    """The typed line; with the invoice's ``currency`` known, a unit price in more decimals
    than it has (``10.50`` JPY) is refused, and so is a line past the invoice limit."""
    description = ctx.convert("DESCRIPTION", _description, " ".join(ctx.args.description))
    price: Decimal = ctx.args.amount
    if currency is not None:
        places = minor_places(currency)
        if price != price.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN):
            raise ctx.usage_error(
                f"{currency} amounts have {places} decimal places: {price} cannot be billed."
            )
        line_amount(ctx.args.qty, to_micros(price), currency)  # InvoiceTooLarge past the limit
    return LineSpec(description, to_micros(price), ctx.args.qty)


async def _currency(ctx: CommandContext, *, slug: str = "", number: str = "") -> str | None:
    """The currency a new line is billed in (None for an unknown tenant or invoice: the
    service says so)."""
    async with ctx.deps.sessions() as session:
        if number:
            invoice = await InvoiceRepository(session).find(number)
            return invoice.currency if invoice else None
        tenant = await TenantRepository(session).find(slug)
        return tenant.billing_currency if tenant else None


def _result(view: InvoiceView, text: str | None = None) -> CommandResult:
    buttons = (
        [LinkButton(f"Pay {view.money(view.invoice.total_micros)}", view.pay_url)]
        if (view.pay_url and view.payable)
        else []
    )
    return CommandResult(text or view.text(), data=view.to_json(), buttons=buttons)


async def _pdf(ctx: CommandContext, view: InvoiceView) -> OutboundFile:
    data = await asyncio.to_thread(render_invoice, view, ctx.deps.invoices.config.issuer)
    return OutboundFile(
        pdf_file_name(view),
        data,
        "application/pdf",
        caption=f"{view.title}: {view.money(view.invoice.total_micros)}",
    )


@commands.command("invoice new", permission=WRITE, arguments=[Arg("slug", type=slug), *LINE])
async def new(ctx: CommandContext) -> CommandResult:
    """Issue a draft invoice to a tenant with one line (add more with /invoice line)."""
    spec = _spec(ctx, await _currency(ctx, slug=ctx.args.slug))
    view = await ctx.deps.invoices.create(ctx.args.slug, [spec], actor=ctx.caller.actor)
    return _result(view, f"Created {view.summary()}.\n{view.text()}")


@commands.command("invoice line", permission=WRITE, arguments=[NUMBER, *LINE])
async def line(ctx: CommandContext) -> CommandResult:
    """Add a line to a draft invoice."""
    spec = _spec(ctx, await _currency(ctx, number=ctx.args.number))
    view = await ctx.deps.invoices.add_line(ctx.args.number, spec, actor=ctx.caller.actor)
    return _result(view)


@commands.command("invoice send", permission=WRITE, arguments=[NUMBER])
async def send(ctx: CommandContext) -> CommandResult:
    """Send an invoice (PDF and pay link) to every chat of its tenant and its e-mail; due in
    INVOICE_DUE_DAYS. It is sent once one of them got it: what this process cannot deliver
    now, a running switchboard delivers."""
    number = ctx.args.number
    async with ctx.deps.sessions() as session:
        invoice = await InvoiceRepository(session).get(number)
        check_sendable(invoice)  # a closed invoice is refused as such, before its recipients
        tenant = await TenantRepository(session).by_id(invoice.tenant_id)
        recipients = await tenant_chats(session, tenant.id)
    outbox = ctx.deps.outbox
    if tenant.email and outbox.reaches(EMAIL_CHANNEL):
        recipients.append(ChatAddress(EMAIL_CHANNEL, tenant.email))
    if not recipients:
        raise SwitchboardError(
            f"{number} has no recipient",
            user_message=f"{number} was not sent: {tenant.slug} has no chat linked and no "
            "e-mail to send it to (link a chat with /start CODE, or set an e-mail with "
            f"/tenant set {tenant.slug} --email ADDRESS and SMTP_URL). Nothing was changed.",
        )
    queued = await ctx.deps.invoices.queue_send(
        number, recipients, actor=ctx.caller.actor, media_dir=ctx.deps.media_dir
    )
    report = await outbox.deliver(queued.outbox_ids)
    view = await ctx.deps.invoices.view(number)
    no_link = (
        ""
        if view.pay_url or not view.payable or ctx.deps.checkout is None
        else (" No pay link: Stripe did not answer; the PDF carries the bank details.")
    )
    waiting = len(recipients) - report.sent
    if report.sent:
        text = f"Sent {view.summary()} to {report.sent} of {len(recipients)} recipient(s)."
        if waiting:
            text += f" The other {waiting} will get it from a running switchboard (retried)."
    else:
        unreached = sorted({r.channel for r in recipients if not outbox.reaches(r.channel)})
        why = (
            f" ({report.errors[0]})"
            if report.errors
            else f" (this process does not reach {', '.join(unreached)})"
            if unreached
            else ""
        )
        text = (
            f"Queued {number} for {len(recipients)} recipient(s), none reached yet{why}: a "
            "running switchboard delivers it (retried for 24 hours), and it becomes sent when "
            f"the first delivery succeeds. It is {view.invoice.status} until then."
        )
    result = _result(view, text + no_link)
    result.files = [queued.document]
    return result


@commands.command("invoice paid", permission=WRITE, arguments=[NUMBER, Arg("note", nargs="*")])
async def paid(ctx: CommandContext) -> CommandResult:
    """Mark an invoice paid (by bank transfer, say), with an optional note."""
    note = ctx.convert("NOTE", text_of(500, empty_ok=True), " ".join(ctx.args.note))
    view = await ctx.deps.invoices.mark_paid(ctx.args.number, actor=ctx.caller.actor, note=note)
    return _result(view, f"Marked paid: {view.summary()}.{_link_left_open(view)}")


@commands.command("invoice cancel", permission=WRITE, arguments=[NUMBER])
async def cancel(ctx: CommandContext) -> CommandResult:
    """Cancel an invoice; it keeps its number."""
    outbox = ctx.deps.outbox
    delivery = DocumentDelivery(
        ctx.deps.invoices.config.issuer, ctx.deps.media_dir, email=outbox.reaches(EMAIL_CHANNEL)
    )
    view, ids = await ctx.deps.invoices.cancel_delivering(
        ctx.args.number, actor=ctx.caller.actor, delivery=delivery
    )
    await outbox.deliver(ids)  # what this process cannot reach, a running switchboard delivers
    notes = await ctx.deps.invoices.credit_notes_of(view.number)
    credited = "".join(f"\nCredit note {n.summary()} issued." for n in notes)
    return _result(view, f"Cancelled {view.summary()}.{credited}{_link_left_open(view)}")


def _link_left_open(view: InvoiceView) -> str:
    """A pay link still open after the invoice left ``sent``: Stripe could not expire it."""
    if view.pay_url is None:
        return ""
    return (
        "\nIts Stripe pay link could not be closed (Stripe did not answer); an alert is "
        "recorded. Expire it in the Stripe dashboard, and refund the payment if it is paid."
    )


@commands.command("invoice show", permission=READ, arguments=[NUMBER])
async def show(ctx: CommandContext) -> CommandResult:
    """An invoice: its lines, totals and status, with its PDF."""
    view = await ctx.deps.invoices.view(ctx.args.number)
    result = _result(view)
    result.files = [await _pdf(ctx, view)]
    return result


@commands.command(
    "invoice list",
    permission=READ,
    arguments=[
        Arg("slug", nargs="?", type=slug),
        Arg("--status", choices=INVOICE_STATUSES),
        Arg("--limit", type=positive_int, default=50, metavar="N"),
    ],
)
async def listing(ctx: CommandContext) -> CommandResult:
    """Invoices, newest first, of every tenant or one."""
    found = await ctx.deps.invoices.search(
        slug=ctx.args.slug, status=ctx.args.status, limit=ctx.args.limit
    )
    data = [v.to_json() for v in found]
    if not found:
        return CommandResult("No invoices.", data=data)
    return CommandResult("\n".join(v.summary() for v in found), data=data)


@commands.command(
    "invoice generate",
    permission=WRITE,
    arguments=[
        Arg("slug", nargs="?", type=slug),
        Arg("--all", action="store_true", dest="everyone"),
        Arg("--period", type=month, metavar="YYYY-MM"),
    ],
)
async def generate(ctx: CommandContext) -> CommandResult:
    """The month's invoices (last month by default) of postpaid and subscribed tenants."""
    if bool(ctx.args.slug) == bool(ctx.args.everyone):
        raise ctx.usage_error("Name one tenant, or --all.")
    today = ctx.deps.clock().date()
    label = ctx.args.period or _last_month(today.year, today.month)
    try:
        period = parse_period(label, today)
    except ValueError as exc:
        raise ctx.usage_error(str(exc).capitalize() + ".") from None
    if period.end >= today:
        raise ctx.usage_error(f"{label} is not over yet: invoice it from its next month on.")
    made = await ctx.deps.monthly_invoicing.generate(
        period, slug=ctx.args.slug, actor=ctx.caller.actor
    )
    views = await ctx.deps.invoices.views_of([g.number for g in made])
    if not views:
        return CommandResult(f"Nothing to invoice for {label}.", data=[])
    lines = [
        f"{'new' if g.created else 'already there'}: {v.summary()}"
        for g, v in zip(made, views, strict=True)
    ]
    return CommandResult(
        f"Invoices for {label}:\n" + "\n".join(lines), data=[v.to_json() for v in views]
    )


def _last_month(year: int, month_no: int) -> str:
    first, _ = month_bounds(year - 1, 12) if month_no == 1 else month_bounds(year, month_no - 1)
    return f"{first:%Y-%m}"


#: An invoice's status as a member reads it (marked here so the catalog carries them).
_STATUS = {
    "draft": N_("draft"),
    "sent": N_("sent"),
    "paid": N_("paid"),
    "overdue": N_("overdue"),
    "cancelled": N_("cancelled"),
}


def _member_summary(t: Translator, view: InvoiceView) -> str:
    """:meth:`InvoiceView.summary` in the member's language (the same text in English)."""
    inv = view.invoice
    english = t.language == "en"

    def day(at: date) -> str:
        return f"{at:%Y-%m-%d}" if english else t.date(at, "medium")

    total = (
        view.money(inv.total_micros)
        if english
        else t.money(from_micros(inv.total_micros), inv.currency)
    )
    status = t(_STATUS[inv.status]) if inv.status in _STATUS else inv.status
    text = t("{number} {slug} {status} {total}", number=inv.number, slug=view.tenant.slug,
             status=status, total=total)  # fmt: skip
    if inv.due_at and view.payable:
        text += t(" due {date}", date=day(inv.due_at))
    if inv.paid_at:
        text += t(" paid {date}", date=day(inv.paid_at))
    return text


@commands.command(
    "invoices", audience="member", unbound_ok=True, arguments=[Arg("--tenant", type=slug)]
)
async def member_invoices(ctx: CommandContext) -> CommandResult:
    """Your organisation's invoices, with a pay button for each unpaid one."""
    t = translator(ctx)
    async with ctx.deps.sessions() as session:
        tenant = await target_tenant(ctx, session)
    found = [
        v for v in await ctx.deps.invoices.search(slug=tenant.slug, limit=50)
        if v.invoice.status != "draft"
    ]  # fmt: skip
    if not found:
        return CommandResult(t("No invoices yet."), data=[])
    buttons: list[LinkButton] = []
    for view in found:
        if view.payable:
            url = await ctx.deps.invoices.ensure_pay_link(view.number, actor=ctx.caller.actor)
            if url:
                total = (
                    view.money(view.invoice.total_micros)
                    if t.language == "en"
                    else t.money(from_micros(view.invoice.total_micros), view.invoice.currency)
                )
                label = t("Pay {number}: {total}", number=view.number, total=total)
                buttons.append(LinkButton(label, url))
    refreshed = [await ctx.deps.invoices.view(v.number) for v in found]
    return CommandResult(
        "\n".join(_member_summary(t, v) for v in refreshed),
        data=[v.to_json() for v in refreshed],
        buttons=buttons,
    )

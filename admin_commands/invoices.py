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
from billing.invoicing.arithmetic import line_amount, rate_of
from billing.invoicing.documents import DocumentDelivery
from billing.invoicing.pdf import pdf_file_name, render_invoice
from billing.invoicing.recipients import tenant_chats
from billing.invoicing.service import LineSpec, check_sendable
from billing.invoicing.views import InvoiceView
from core.envelope import EMAIL_CHANNEL, ChatAddress, LinkButton, OutboundFile
from core.errors import SwitchboardError
from core.i18n import N_, Translator, lazy
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
            lazy(
                "{value} is not an invoice number like INV-2026-0001 "
                "(or a credit note's CN-2026-0001)",
                value=repr(raw),
            )
        )
    return value


def month(raw: str) -> str:
    """``YYYY-MM`` (checked against today by the command)."""
    if not re.match(r"^\d{4}-\d{2}$", raw.strip()):
        raise argparse.ArgumentTypeError(
            lazy("{value} is not a month like 2026-10", value=repr(raw))
        )
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
                lazy(
                    "{currency} amounts have {places} decimal places: {price} cannot be billed.",
                    currency=currency,
                    places=places,
                    price=str(price),
                )
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


def _money(t: Translator, view: InvoiceView, micros: int) -> str:
    """``1234.50 EUR`` in English as always; ``1 234,50 EUR`` / ``1.234,50 EUR``."""
    if t.language == "en":
        return view.money(micros)
    return t.money(from_micros(micros), view.invoice.currency)


def _result(t: Translator, view: InvoiceView, text: str | None = None) -> CommandResult:
    buttons = (
        [
            LinkButton(
                t("Pay {price}", price=_money(t, view, view.invoice.total_micros)), view.pay_url
            )
        ]
        if (view.pay_url and view.payable)
        else []
    )
    return CommandResult(text or _text(t, view), data=view.to_json(), buttons=buttons)


def _day(t: Translator, at: date) -> str:
    return f"{at:%Y-%m-%d}" if t.language == "en" else t.date(at, "medium")


def _text(t: Translator, view: InvoiceView) -> str:
    """An invoice in chat: :meth:`InvoiceView.text` in English, else in ``t``'s language with
    the document's own labels (the PDF's)."""
    if t.language == "en":
        return view.text()
    inv = view.invoice
    title = (
        t("Credit note {number} for {invoice}", number=inv.number, invoice=view.credits or "?")
        if inv.kind == "credit_note"
        else view.document_title(t)
    )
    issued = t("Issued {date}", date=_day(t, inv.issued_at))
    if inv.due_at:
        issued += t(", due {date}", date=_day(t, inv.due_at))
    if inv.paid_at:
        issued += t(", paid {date}", date=_day(t, inv.paid_at))
    rows = [
        t("{title} to {name} ({slug}): {status}", title=title, name=view.tenant.name,
          slug=view.tenant.slug, status=_status(t, inv.status)),
        issued,
    ]  # fmt: skip
    for line in view.lines:
        quantity = t.number(line.quantity)
        unit = _unit_price(t, view, line.unit_price_micros)
        amount = _money(t, view, line.amount_micros)
        rows.append(f"• {line.description}: {quantity} × {unit} = {amount}")
    rate = t.number(rate_of(inv.vat_rate_ppm) * 100)
    subtotal, vat, total = (
        t.pgettext("invoice", "Subtotal (net)"),
        t.pgettext("invoice", "VAT"),
        t.pgettext("invoice", "Total"),
    )
    rows += [
        f"{subtotal} {_money(t, view, inv.subtotal_micros)}",
        f"{vat} {rate} % {_money(t, view, inv.vat_micros)}",
        f"{total} {_money(t, view, inv.total_micros)}",
    ]
    if inv.notes:
        rows.append(t("Notes: {notes}", notes=inv.notes))
    if view.pay_url and view.payable:
        rows.append(t("Pay: {url}", url=view.pay_url))
    return "\n".join(rows)


def _unit_price(t: Translator, view: InvoiceView, micros: int) -> str:
    """A unit price as given, never rounded (see :meth:`InvoiceView.unit_price`)."""
    exact = from_micros(micros)
    if exact == exact.quantize(Decimal("0.01")):
        return _money(t, view, micros)
    return f"{t.number(exact, '0.00########')} {view.invoice.currency}"


async def _pdf(ctx: CommandContext, view: InvoiceView) -> OutboundFile:
    data = await asyncio.to_thread(render_invoice, view, ctx.deps.invoices.config.issuer)
    t = translator(ctx)
    caption = (
        f"{view.title}: {view.money(view.invoice.total_micros)}"
        if t.language == "en"
        else view.caption(t)
    )
    return OutboundFile(pdf_file_name(view), data, "application/pdf", caption=caption)


@commands.command("invoice new", permission=WRITE, arguments=[Arg("slug", type=slug), *LINE])
async def new(ctx: CommandContext) -> CommandResult:
    """Issue a draft invoice to a tenant with one line (add more with /invoice line)."""
    spec = _spec(ctx, await _currency(ctx, slug=ctx.args.slug))
    view = await ctx.deps.invoices.create(ctx.args.slug, [spec], actor=ctx.caller.actor)
    t = translator(ctx)
    created = t("Created {invoice}.", invoice=_summary(t, view))
    return _result(t, view, f"{created}\n{_text(t, view)}")


@commands.command("invoice line", permission=WRITE, arguments=[NUMBER, *LINE])
async def line(ctx: CommandContext) -> CommandResult:
    """Add a line to a draft invoice."""
    spec = _spec(ctx, await _currency(ctx, number=ctx.args.number))
    view = await ctx.deps.invoices.add_line(ctx.args.number, spec, actor=ctx.caller.actor)
    return _result(translator(ctx), view)


@commands.command("invoice send", permission=WRITE, arguments=[NUMBER])
async def send(ctx: CommandContext) -> CommandResult:
    """Send an invoice (PDF and pay link) to every chat and the e-mail of its tenant.

    It is due in INVOICE_DUE_DAYS and counts as sent once one of them got it: what this process
    cannot deliver now, a running switchboard delivers."""
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
            user_message=lazy(
                "{number} was not sent: {slug} has no chat linked and no e-mail to send it to "
                "(link a chat with /start CODE, or set an e-mail with "
                "/tenant set {slug} --email ADDRESS and SMTP_URL). Nothing was changed.",
                number=number,
                slug=tenant.slug,
            ),
        )
    queued = await ctx.deps.invoices.queue_send(
        number, recipients, actor=ctx.caller.actor, media_dir=ctx.deps.media_dir
    )
    report = await outbox.deliver(queued.outbox_ids)
    view = await ctx.deps.invoices.view(number)
    t = translator(ctx)
    no_link = (
        ""
        if view.pay_url or not view.payable or ctx.deps.checkout is None
        else " " + t("No pay link: Stripe did not answer; the PDF carries the bank details.")
    )
    waiting = len(recipients) - report.sent
    if report.sent:
        text = t(
            "Sent {invoice} to {sent} of {count} recipient(s).",
            invoice=_summary(t, view),
            sent=t.number(report.sent),
            count=t.number(len(recipients)),
        )
        if waiting:
            text += " " + t(
                "The other {waiting} will get it from a running switchboard (retried).",
                waiting=t.number(waiting),
            )
    else:
        unreached = sorted({r.channel for r in recipients if not outbox.reaches(r.channel)})
        why = (
            f" ({report.errors[0]})"
            if report.errors
            else " " + t("(this process does not reach {channels})", channels=", ".join(unreached))
            if unreached
            else ""
        )
        text = t(
            "Queued {number} for {count} recipient(s), none reached yet{why}: a running "
            "switchboard delivers it (retried for 24 hours), and it becomes sent when the first "
            "delivery succeeds. It is {status} until then.",
            number=number,
            count=t.number(len(recipients)),
            why=why,
            status=_status(t, view.invoice.status),
        )
    result = _result(t, view, text + no_link)
    result.files = [queued.document]
    return result


@commands.command("invoice paid", permission=WRITE, arguments=[NUMBER, Arg("note", nargs="*")])
async def paid(ctx: CommandContext) -> CommandResult:
    """Mark an invoice paid (by bank transfer, say), with an optional note."""
    note = ctx.convert("NOTE", text_of(500, empty_ok=True), " ".join(ctx.args.note))
    view = await ctx.deps.invoices.mark_paid(ctx.args.number, actor=ctx.caller.actor, note=note)
    t = translator(ctx)
    marked = t("Marked paid: {invoice}.", invoice=_summary(t, view))
    return _result(t, view, marked + _link_left_open(t, view))


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
    t = translator(ctx)
    text = t("Cancelled {invoice}.", invoice=_summary(t, view))
    text += "".join(
        "\n" + t("Credit note {invoice} issued.", invoice=_summary(t, n)) for n in notes
    )
    return _result(t, view, text + _link_left_open(t, view))


def _link_left_open(t: Translator, view: InvoiceView) -> str:
    """A pay link still open after the invoice left ``sent``: Stripe could not expire it."""
    if view.pay_url is None:
        return ""
    return "\n" + t(
        "Its Stripe pay link could not be closed (Stripe did not answer); an alert is "
        "recorded. Expire it in the Stripe dashboard, and refund the payment if it is paid."
    )


@commands.command("invoice show", permission=READ, arguments=[NUMBER])
async def show(ctx: CommandContext) -> CommandResult:
    """An invoice: its lines, totals and status, with its PDF."""
    view = await ctx.deps.invoices.view(ctx.args.number)
    result = _result(translator(ctx), view)
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
    t = translator(ctx)
    if not found:
        return CommandResult(t("No invoices."), data=data)
    return CommandResult("\n".join(_summary(t, v) for v in found), data=data)


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
        raise ctx.usage_error(lazy("Name one tenant, or --all."))
    today = ctx.deps.clock().date()
    label = ctx.args.period or _last_month(today.year, today.month)
    try:
        period = parse_period(label, today)
    except ValueError as exc:
        raise ctx.usage_error(str(exc).capitalize() + ".") from None
    if period.end >= today:
        raise ctx.usage_error(
            lazy("{month} is not over yet: invoice it from its next month on.", month=label)
        )
    made = await ctx.deps.monthly_invoicing.generate(
        period, slug=ctx.args.slug, actor=ctx.caller.actor
    )
    views = await ctx.deps.invoices.views_of([g.number for g in made])
    t = translator(ctx)
    if not views:
        return CommandResult(t("Nothing to invoice for {month}.", month=label), data=[])
    lines = [
        t("new: {invoice}", invoice=_summary(t, v))
        if g.created
        else t("already there: {invoice}", invoice=_summary(t, v))
        for g, v in zip(made, views, strict=True)
    ]
    return CommandResult(
        t("Invoices for {month}:", month=label) + "\n" + "\n".join(lines),
        data=[v.to_json() for v in views],
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


def _status(t: Translator, status: str) -> str:
    return t(_STATUS[status]) if status in _STATUS else status


def _summary(t: Translator, view: InvoiceView) -> str:
    """:meth:`InvoiceView.summary` in the reader's language (the same text in English)."""
    inv = view.invoice
    text = t("{number} {slug} {status} {total}", number=inv.number, slug=view.tenant.slug,
             status=_status(t, inv.status), total=_money(t, view, inv.total_micros))  # fmt: skip
    if inv.due_at and view.payable:
        text += t(" due {date}", date=_day(t, inv.due_at))
    if inv.paid_at:
        text += t(" paid {date}", date=_day(t, inv.paid_at))
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
                total = _money(t, view, view.invoice.total_micros)
                label = t("Pay {number}: {total}", number=view.number, total=total)
                buttons.append(LinkButton(label, url))
    refreshed = [await ctx.deps.invoices.view(v.number) for v in found]
    return CommandResult(
        "\n".join(_summary(t, v) for v in refreshed),
        data=[v.to_json() for v in refreshed],
        buttons=buttons,
    )

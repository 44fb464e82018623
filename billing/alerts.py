"""What platform admins should look at: ``/alerts`` and the daily push.

Each kind of alert is one small rule: an async function of a session and "now" returning the
alerts it finds, read with one or two bounded queries (indexes or rollups, never a scan of the
raw usage history). :data:`RULES` lists them in the order admins read them; a new kind is one
more function in that tuple.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.i18n import Number, Text, Translator, lazy, lazy_plural
from core.money import from_micros
from storage.models import Alert as PaymentAlert
from storage.models import Invoice, LedgerEntry, Tenant, UsageEvent, UsageMonthlyTenant
from storage.states import INVOICE_UNPAID, LedgerKind

#: A postpaid tenant is flagged once it has used this share of its monthly quota.
QUOTA_PERCENT = 80
#: A prepaid tenant is flagged when its balance falls under this share of its last top-up.
LOW_BALANCE_PERCENT = 20
INACTIVE_AFTER = timedelta(days=7)
TRIAL_WARNING = timedelta(days=3)
#: How far back the alerts about single calls (unpriced, overdraft) look.
RECENT = timedelta(days=7)
#: Ledger entries that top a balance up.
TOP_UPS: tuple[LedgerKind, ...] = ("grant", "purchase")


@dataclass(frozen=True, slots=True)
class Alert:
    kind: str
    #: The tenant's slug; None for an alert about the platform (an unpriced model).
    tenant: str | None
    #: In English, as ``--json`` and the daily push give it.
    detail: str
    #: What the alert is about within its kind and tenant (the model), when that matters.
    subject: str = ""
    #: For an alert about an event (a failed payment), the day it happened: it is pushed once,
    #: not every day it stays in the list. Alerts about a state (a quota) have none.
    occurred: date | None = None
    #: ``detail`` as a message of the catalogs (None for a text recorded as it is, such as a
    #: payment problem's).
    message: Text | None = None

    @classmethod
    def of(cls, kind: str, tenant: str | None, message: Text, subject: str = "") -> Alert:
        """An alert whose detail is ``message`` (English in ``detail``, translated by
        :meth:`detail_in`)."""
        return cls(kind, tenant, str(message), subject, message=message)

    def detail_in(self, t: Translator) -> str:
        """The detail in ``t``'s language."""
        return t.text(self.message) if self.message is not None else self.detail

    @property
    def key(self) -> tuple[str, str, str]:
        """Two alerts with one key are the same alert (it is pushed once a day)."""
        return (self.kind, self.tenant or "", self.subject)

    def push_day(self, today: date) -> date:
        """The day its push is recorded under: the event's day, else today."""
        return self.occurred or today

    def as_json(self) -> dict[str, str | None]:
        return {"kind": self.kind, "tenant": self.tenant, "detail": self.detail}


AlertRule = Callable[[AsyncSession, datetime], Awaitable[list[Alert]]]


def _live() -> ColumnElement[bool]:
    """Suspended tenants are not alerted about: someone already acted on them."""
    return Tenant.status != "suspended"


def _day(at: datetime) -> str:
    return f"{at:%Y-%m-%d}"


def _in(left: timedelta) -> Text:
    """``in 3 days``, ``in 16 hours``, ``within the hour``."""
    if left.days:
        return lazy_plural("in {n} day", "in {n} days", left.days)
    hours = left.seconds // 3600
    return lazy_plural("in {n} hour", "in {n} hours", hours) if hours else lazy("within the hour")


async def quota(session: AsyncSession, now: datetime) -> list[Alert]:
    """Postpaid tenants that used at least 80 % of this month's token quota."""
    month = now.date().replace(day=1)
    used = func.sum(UsageMonthlyTenant.charged_tokens)
    query = (
        select(Tenant.slug, Tenant.monthly_token_quota, used)
        .join(UsageMonthlyTenant, UsageMonthlyTenant.tenant_id == Tenant.id)
        .where(
            UsageMonthlyTenant.month == month,
            Tenant.plan == "postpaid",
            Tenant.monthly_token_quota > 0,
            _live(),
        )
        .group_by(Tenant.slug, Tenant.monthly_token_quota)
    )
    alerts: list[Alert] = []
    for slug, limit, tokens in (await session.execute(query)).all():
        tokens, limit = int(tokens or 0), int(limit or 0)
        if tokens * 100 >= limit * QUOTA_PERCENT:
            alerts.append(
                Alert.of(
                    "quota",
                    slug,
                    lazy(
                        "{percent}% of the monthly quota used ({used} of {limit} tokens)",
                        percent=tokens * 100 // limit,
                        used=Number(tokens),
                        limit=Number(limit),
                    ),
                )
            )
    return alerts


async def low_balance(session: AsyncSession, now: datetime) -> list[Alert]:
    """Prepaid tenants whose balance is under 20 % of their last top-up (grant or purchase)."""
    last = (
        select(LedgerEntry.tenant_id, func.max(LedgerEntry.id).label("entry_id"))
        .where(LedgerEntry.kind.in_(TOP_UPS))
        .group_by(LedgerEntry.tenant_id)
        .subquery()
    )
    query = (
        select(Tenant.slug, Tenant.token_balance, LedgerEntry.tokens, LedgerEntry.created_at)
        .join(last, last.c.tenant_id == Tenant.id)
        .join(LedgerEntry, LedgerEntry.id == last.c.entry_id)
        .where(
            Tenant.plan == "prepaid",
            Tenant.token_balance * 100 < LedgerEntry.tokens * LOW_BALANCE_PERCENT,
            _live(),
        )
    )
    return [
        Alert.of(
            "low_balance",
            slug,
            lazy(
                "balance {balance} tokens, under {percent}% of the last top-up ({topped} on {day})",
                balance=Number(balance),
                percent=LOW_BALANCE_PERCENT,
                topped=Number(topped),
                day=_day(at),
            ),
        )
        for slug, balance, topped, at in (await session.execute(query)).all()
    ]


async def overdraft(session: AsyncSession, now: datetime) -> list[Alert]:
    """Tenants a provider charged beyond what was reserved for the call (recently)."""
    query = (
        select(
            Tenant.slug,
            Tenant.token_balance,
            func.count(UsageEvent.id),
            func.sum(UsageEvent.overdraft_tokens),
            func.max(UsageEvent.created_at),
        )
        .join(Tenant, Tenant.id == UsageEvent.tenant_id)
        .where(UsageEvent.created_at >= now - RECENT, UsageEvent.overdraft_tokens > 0)
        .group_by(Tenant.slug, Tenant.token_balance)
    )
    return [
        Alert.of(
            "overdraft",
            slug,
            lazy_plural(
                "charged {tokens} tokens beyond the reservation in {calls} call "
                "(last {day}); balance {balance} tokens",
                "charged {tokens} tokens beyond the reservation in {calls} calls "
                "(last {day}); balance {balance} tokens",
                calls,
                tokens=Number(int(tokens)),
                calls=Number(calls),
                day=_day(last),
                balance=Number(balance),
            ),
        )
        for slug, balance, calls, tokens, last in (await session.execute(query)).all()
    ]


async def trial_ending(session: AsyncSession, now: datetime) -> list[Alert]:
    """Trials that end within 3 days, or have ended while the tenant is still on trial."""
    query = select(Tenant.slug, Tenant.trial_ends_at).where(
        Tenant.status == "trial",
        Tenant.trial_ends_at.is_not(None),
        Tenant.trial_ends_at <= now + TRIAL_WARNING,
    )
    alerts: list[Alert] = []
    for slug, ends in (await session.execute(query)).all():
        if ends is None:  # excluded by the query; here for the type checker
            continue
        if ends <= now:
            detail = lazy("trial ended on {day}", day=_day(ends))
        else:
            when = f"{ends:%Y-%m-%d %H:%M}"
            detail = lazy("trial ends on {when} UTC ({left})", when=when, left=_in(ends - now))
        alerts.append(Alert.of("trial", slug, detail))
    return alerts


async def inactive(session: AsyncSession, now: datetime) -> list[Alert]:
    """Tenants with no message for 7 days (counted from creation if they never had one)."""
    seen = func.coalesce(Tenant.last_activity_at, Tenant.created_at)
    query = select(Tenant.slug, Tenant.last_activity_at, Tenant.created_at).where(
        seen <= now - INACTIVE_AFTER, _live()
    )
    alerts: list[Alert] = []
    for slug, last, created in (await session.execute(query)).all():
        since = last or created
        days = (now - since).days
        detail = (
            lazy_plural(
                "no activity since {day} ({n} day)",
                "no activity since {day} ({n} days)",
                days,
                day=_day(since),
            )
            if last
            else lazy_plural(
                "no activity since it was created on {day} ({n} day)",
                "no activity since it was created on {day} ({n} days)",
                days,
                day=_day(since),
            )
        )
        alerts.append(Alert.of("inactive", slug, detail))
    return alerts


async def unpriced_models(session: AsyncSession, now: datetime) -> list[Alert]:
    """Models recently metered at zero cost because no price is known for them.

    A model stops being flagged once its calls are priced again (a ``model_prices`` row added).
    """
    since = now - RECENT
    model = (UsageEvent.provider, UsageEvent.model)
    # The status goes through an expression so that no index on it is chosen over the one on
    # created_at: SQLite (without ANALYZE) prefers an equality and would read every settled call.
    settled = (UsageEvent.status + "") == "settled"
    recent = (settled, UsageEvent.created_at >= since)
    unpriced = (
        select(*model, func.count(UsageEvent.id), func.max(UsageEvent.created_at))
        .where(*recent, UsageEvent.priced.is_(False))
        .group_by(*model)
    )
    priced = (
        select(*model, func.max(UsageEvent.created_at))
        .where(*recent, UsageEvent.priced.is_(True))
        .group_by(*model)
    )
    last_priced = {(p, m): at for p, m, at in (await session.execute(priced)).all()}
    alerts: list[Alert] = []
    for provider, name, calls, last in (await session.execute(unpriced)).all():
        priced_at = last_priced.get((provider, name))
        if priced_at is not None and priced_at > last:
            continue
        subject = f"{provider}/{name}"
        alerts.append(
            Alert.of(
                "unpriced_model",
                None,
                lazy_plural(
                    "{subject}: {calls} call metered at zero cost "
                    "(no known price; add one to model_prices)",
                    "{subject}: {calls} calls metered at zero cost "
                    "(no known price; add one to model_prices)",
                    calls,
                    subject=subject,
                    calls=Number(calls),
                ),
                subject,
            )
        )
    return alerts


async def unmetered_calls(session: AsyncSession, now: datetime) -> list[Alert]:
    """Models whose server recently answered without a usable usage report: those calls were
    charged an estimate (each event keeps whatever the server did report)."""
    model = (UsageEvent.provider, UsageEvent.model)
    query = (
        select(*model, func.count(UsageEvent.id), func.max(UsageEvent.created_at))
        # As in unpriced_models: keep the created_at index in use.
        .where(
            (UsageEvent.status + "") == "settled",
            UsageEvent.created_at >= now - RECENT,
            UsageEvent.estimated.is_(True),
        )
        .group_by(*model)
    )
    alerts: list[Alert] = []
    for provider, name, calls, last in (await session.execute(query)).all():
        subject = f"{provider}/{name}"
        alerts.append(
            Alert.of(
                "unmetered",
                None,
                lazy_plural(
                    "{subject}: {calls} call charged an estimate "
                    "(no usable usage reported; last {day})",
                    "{subject}: {calls} calls charged an estimate "
                    "(no usable usage reported; last {day})",
                    calls,
                    subject=subject,
                    calls=Number(calls),
                    day=_day(last),
                ),
                subject,
            )
        )
    return alerts


#: Every kind, in the order admins read them.
async def failed_payments(session: AsyncSession, now: datetime) -> list[Alert]:
    """Payments that went wrong recently: a failed renewal, an amount that did not match, a
    refund of something never credited (recorded by the Stripe webhook as they happen)."""
    query = (
        select(
            PaymentAlert.kind,
            PaymentAlert.detail,
            PaymentAlert.id,
            PaymentAlert.created_at,
            Tenant.slug,
        )
        .outerjoin(Tenant, Tenant.id == PaymentAlert.tenant_id)
        .where(PaymentAlert.created_at >= now - RECENT)
        .order_by(PaymentAlert.id)
    )
    return [
        Alert(
            "failed_payment",
            slug,
            payment_alert_text(kind, detail),
            subject=payment_alert_subject(alert_id),
            occurred=at.date(),
        )
        for kind, detail, alert_id, at, slug in (await session.execute(query)).all()
    ]


def payment_alert_text(kind: str, detail: str) -> str:
    """``amount mismatch: …``: how a recorded payment alert reads, pushed or listed."""
    return f"{kind.replace('_', ' ')}: {detail}"


def payment_alert_subject(alert_id: int) -> str:
    return str(alert_id)


async def overdue_invoices(session: AsyncSession, now: datetime) -> list[Alert]:
    """Invoices sent and not paid by their due date."""
    query = (
        select(Invoice.number, Invoice.total_micros, Invoice.currency, Invoice.due_at, Tenant.slug)
        .join(Tenant, Tenant.id == Invoice.tenant_id)
        .where(Invoice.status.in_(INVOICE_UNPAID), Invoice.due_at < now)
        .order_by(Invoice.due_at)
    )
    return [
        Alert.of(
            "overdue_invoice",
            slug,
            lazy(
                "{number}: {amount} {currency}, due {day}",
                number=number,
                amount=_amount(total),
                currency=currency,
                day=_day(due),
            )
            if due is not None
            else lazy(
                "{number}: {amount} {currency}, past due",
                number=number,
                amount=_amount(total),
                currency=currency,
            ),
            subject=number,
        )
        for number, total, currency, due, slug in (await session.execute(query)).all()
    ]


def _amount(micros: int) -> Number:
    return Number(from_micros(micros).quantize(Decimal("0.01")), "0.00")


RULES: tuple[AlertRule, ...] = (
    quota,
    low_balance,
    overdraft,
    trial_ending,
    inactive,
    unpriced_models,
    unmetered_calls,
    failed_payments,
    overdue_invoices,
)


async def collect(
    session: AsyncSession, now: datetime, rules: Sequence[AlertRule] = RULES
) -> list[Alert]:
    """Every current alert: by kind in ``rules`` order, then by tenant."""
    found: list[Alert] = []
    for rule in rules:
        found += sorted(await rule(session, now), key=lambda a: (a.tenant or "", a.subject))
    return found

"""The states and kinds the money rows and update claims take, each named once.

The database stores them as plain strings (``String(16)`` columns, unchanged by any
migration); typing the columns with these ``Literal`` aliases lets mypy refuse a misspelt
state (``payment.status == "payed"``) wherever the left side is typed. Each tuple lists the
allowed values in the order they are shown (``--status`` choices, reports).
"""

from __future__ import annotations

from typing import Literal, get_args

#: A payment: ``pending`` → ``paid`` → ``refunded``, or ``expired`` / ``failed``.
PaymentStatus = Literal["pending", "paid", "refunded", "expired", "failed"]
PAYMENT_STATUSES: tuple[PaymentStatus, ...] = get_args(PaymentStatus)
#: Payments whose money came in (a refunded one counts less what was refunded).
PAYMENT_RECEIVED: tuple[PaymentStatus, ...] = ("paid", "refunded")
#: Payments a paid Checkout Session may still move out of, crediting them (a lost answer to
#: the create call marks a row failed; Stripe may still complete the session).
PAYMENT_CREDITABLE: tuple[PaymentStatus, ...] = ("pending", "failed", "expired")

#: What a payment buys: a token ``pack``, a ``subscription``'s first period (its Checkout),
#: a subscription ``renewal`` Stripe charged, or an ``invoice`` paid through its pay link.
PaymentKind = Literal["pack", "subscription", "renewal", "invoice"]
PAYMENT_KINDS: tuple[PaymentKind, ...] = get_args(PaymentKind)

#: An invoice: ``draft`` → ``sent`` → ``paid``, ``overdue`` (sent and past due) or
#: ``cancelled`` (keeps its number).
InvoiceStatus = Literal["draft", "sent", "paid", "overdue", "cancelled"]
INVOICE_STATUSES: tuple[InvoiceStatus, ...] = get_args(InvoiceStatus)
#: Invoices whose total is still owed (they can be paid).
INVOICE_UNPAID: tuple[InvoiceStatus, ...] = ("sent", "overdue")
#: Invoices that are settled one way or the other: no longer payable, sendable or changed.
INVOICE_CLOSED: tuple[InvoiceStatus, ...] = ("paid", "cancelled")
#: An ``invoice`` (``INV-``, receipts too) or a ``credit_note`` (``CN-``) crediting one.
InvoiceKind = Literal["invoice", "credit_note"]
INVOICE_KINDS: tuple[InvoiceKind, ...] = get_args(InvoiceKind)

#: Our copy of a Stripe subscription: it runs, it waits for a payment, or it is over.
SubscriptionStatus = Literal["active", "past_due", "canceled"]
SUBSCRIPTION_STATUSES: tuple[SubscriptionStatus, ...] = get_args(SubscriptionStatus)

#: A provider call: ``reserved`` first, then ``settled``, ``failed`` or ``released`` once.
UsageStatus = Literal["reserved", "settled", "failed", "released"]
USAGE_STATUSES: tuple[UsageStatus, ...] = get_args(UsageStatus)

#: A change of a tenant's token balance.
LedgerKind = Literal["grant", "purchase", "usage", "refund", "adjustment"]
LEDGER_KINDS: tuple[LedgerKind, ...] = get_args(LedgerKind)

#: A claim on an inbound update: its turn runs (``processing``), its answer is saved but maybe
#: not yet delivered (``answered``), it ended (``done``), or it was cut short and its chat told
#: to ask again (``abandoned``).
ClaimState = Literal["processing", "answered", "done", "abandoned"]
CLAIM_STATES: tuple[ClaimState, ...] = get_args(ClaimState)

#: A tenant: on ``trial``, ``active`` (paying), or ``suspended`` by an operator.
TenantStatus = Literal["trial", "active", "suspended"]
TENANT_STATUSES: tuple[TenantStatus, ...] = get_args(TenantStatus)

#: How a tenant pays: packs (``prepaid``), a monthly invoice (``postpaid``) or a
#: ``subscription``.
PlanKind = Literal["prepaid", "postpaid", "subscription"]
PLAN_KINDS: tuple[PlanKind, ...] = get_args(PlanKind)

#: Each list by the column that holds it (table, column), for the tests that hold the lists
#: to the schema.
COLUMNS: dict[tuple[str, str], tuple[str, ...]] = {
    ("payments", "status"): PAYMENT_STATUSES,
    ("payments", "kind"): PAYMENT_KINDS,
    ("invoices", "status"): INVOICE_STATUSES,
    ("invoices", "kind"): INVOICE_KINDS,
    ("subscriptions", "status"): SUBSCRIPTION_STATUSES,
    ("usage_events", "status"): USAGE_STATUSES,
    ("ledger_entries", "kind"): LEDGER_KINDS,
    ("processed_updates", "state"): CLAIM_STATES,
    ("tenants", "status"): TENANT_STATUSES,
    ("plans", "kind"): PLAN_KINDS,
}

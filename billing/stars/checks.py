"""``pre_checkout_query``: may Telegram take the Stars? (DESIGN §8 "Telegram Stars")

Yes only when the payload names a Stars payment row of ours that is still ``pending`` (never
paid, failed or refunded), the query asks exactly that row's price in ``XTR``, the pack or plan
is still on sale at that same Stars price, and the tenant still exists and is not suspended.
Every "no" carries a reason the buyer reads in Telegram's payment sheet, in their language.
Nothing is written: the answer is read-only, so it is quick (Telegram waits 10 seconds).
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.stars.amounts import STARS_CURRENCY, STARS_PROVIDER, micros_to_stars
from billing.stars.payload import payment_id_of
from core.i18n import Text, lazy
from storage.db import Sessions
from storage.models import Pack, Plan, Tenant
from storage.repositories.catalog import PackRepository, PlanRepository
from storage.repositories.payments import PaymentRepository

UNKNOWN = lazy("This invoice is not valid any more. Please ask for a new one with /buy.")
USED = lazy("This invoice was already paid or closed. Please ask for a new one with /buy.")
CHANGED = lazy("The price has changed since this invoice was made. Please ask for a new one.")
OFF_SALE = lazy("{item} is no longer on sale.")
NO_TENANT = lazy("This organisation no longer exists, so nothing can be bought for it.")
SUSPENDED = lazy("This organisation is suspended; payments are not accepted. Please contact us.")


@dataclass(frozen=True, slots=True)
class Verdict:
    """``ok``, or a ``reason``; ``language`` is the tenant's, for the reason's translation."""

    reason: Text | None = None
    language: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


async def check_pre_checkout(
    sessions: Sessions, payload: str, currency: str, total_amount: int
) -> Verdict:
    payment_id = payment_id_of(payload)
    if payment_id is None:
        return Verdict(UNKNOWN)
    async with sessions() as session:
        payment = await PaymentRepository(session).by_id(payment_id)
        if payment is None or payment.provider != STARS_PROVIDER:
            return Verdict(UNKNOWN)
        tenant = await session.get(Tenant, payment.tenant_id)
        if tenant is None:
            return Verdict(NO_TENANT)
        language = tenant.language
        if tenant.status == "suspended":
            return Verdict(SUSPENDED, language)
        if payment.status != "pending" or payment.telegram_charge_id is not None:
            return Verdict(USED, language)
        stars = micros_to_stars(payment.amount_micros)
        if currency != STARS_CURRENCY or total_amount != stars:
            return Verdict(CHANGED, language)
        item: Pack | Plan | None
        if payment.kind == "pack":
            item = await PackRepository(session).find(payment.item)
        else:
            item = await PlanRepository(session).find(payment.item)
        if item is None or not item.active:
            return Verdict(lazy(OFF_SALE.msgid, item=payment.item), language)
        tokens = item.tokens if isinstance(item, Pack) else item.tokens_included
        if item.stars != stars or tokens != payment.tokens:
            return Verdict(CHANGED, language)
    return Verdict(None, language)

"""Telegram Stars on the wire: the Bot API calls (:class:`AiogramStarsApi`) and the updates
(:func:`payments_router`: ``pre_checkout_query``, ``successful_payment``, ``refunded_payment``).

Payment updates do not go through the pipeline: they are not turns, carry no text and must be
answered fast (a pre-checkout query within 10 seconds). Their exactly-once handling is the
billing's (:mod:`billing.stars.credit`): a redelivered or concurrently delivered payment is
recorded once whatever happens here. Fields are read leniently (what aiogram does not know is
ignored) and billed strictly (currency, amount and payload must match our row).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.types import LabeledPrice, Message, PreCheckoutQuery

from billing.stars.amounts import STARS_CURRENCY, SUBSCRIPTION_PERIOD_SECONDS
from billing.stars.api import InvoiceSpec, StarsApiError
from billing.stars.checks import Verdict
from billing.stars.credit import StarsCharge
from billing.stars.service import StarsPayments
from core.i18n import Translators, lazy

log = logging.getLogger(__name__)

#: Telegram waits 10 s for the answer; ours is given well before, whatever the database does.
PRE_CHECKOUT_BUDGET_SECONDS = 7.0
BUSY = lazy("Payments are busy right now; nothing was charged. Please try again in a minute.")
#: A credit that failed (the database unreachable) is tried again this often, this long apart:
#: Telegram does not resend a payment update it delivered.
CREDIT_ATTEMPTS = 5
CREDIT_RETRY_SECONDS = 2.0


class AiogramStarsApi:
    """:class:`billing.stars.api.StarsApi` through an aiogram :class:`Bot`."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot

    async def send_invoice(self, chat_id: int, spec: InvoiceSpec, *, thread_id: int | None) -> None:
        try:
            await self.bot.send_invoice(
                chat_id=chat_id,
                title=spec.title,
                description=spec.description,
                payload=spec.payload,
                currency=STARS_CURRENCY,
                prices=[LabeledPrice(label=spec.label, amount=spec.stars)],
                provider_token="",
                message_thread_id=thread_id,
            )
        except TelegramAPIError as exc:
            raise StarsApiError(exc.message) from exc

    async def subscription_link(self, spec: InvoiceSpec) -> str:
        try:
            return await self.bot.create_invoice_link(
                title=spec.title,
                description=spec.description,
                payload=spec.payload,
                currency=STARS_CURRENCY,
                prices=[LabeledPrice(label=spec.label, amount=spec.stars)],
                provider_token="",
                subscription_period=SUBSCRIPTION_PERIOD_SECONDS,
            )
        except TelegramAPIError as exc:
            raise StarsApiError(exc.message) from exc

    async def refund(self, user_id: int, charge_id: str) -> None:
        try:
            await self.bot.refund_star_payment(
                user_id=user_id, telegram_payment_charge_id=charge_id
            )
        except TelegramAPIError as exc:
            raise StarsApiError(exc.message) from exc

    async def cancel_subscription(self, user_id: int, charge_id: str, *, cancel: bool) -> None:
        try:
            await self.bot.edit_user_star_subscription(
                user_id=user_id, telegram_payment_charge_id=charge_id, is_canceled=cancel
            )
        except TelegramAPIError as exc:
            raise StarsApiError(exc.message) from exc


def payments_router(
    stars: StarsPayments,
    translators: Translators,
    deliver: Callable[[Sequence[int]], None],
) -> Router:
    """Handlers for Stars updates; ``deliver`` sends outbox rows written by a credit."""
    router = Router(name="stars-payments")

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery) -> None:
        try:
            verdict = await asyncio.wait_for(
                stars.pre_checkout(query.invoice_payload, query.currency, query.total_amount),
                PRE_CHECKOUT_BUDGET_SECONDS,
            )
        except Exception:  # the database is slow or down: say no now rather than never
            log.exception("pre-checkout %s could not be checked", query.id)
            verdict = Verdict(BUSY)
        if verdict.ok:
            await query.answer(ok=True)
            return
        assert verdict.reason is not None
        language = translators.resolve(
            chosen=None, client=query.from_user.language_code, tenant=verdict.language
        )
        reason = translators.get(language).text(verdict.reason)
        log.info("pre-checkout %s refused: %s", query.id, verdict.reason)
        await query.answer(ok=False, error_message=reason)

    @router.message(F.successful_payment)
    async def successful_payment(message: Message) -> None:
        paid = message.successful_payment
        assert paid is not None
        user = message.from_user
        charge = StarsCharge(
            charge_id=paid.telegram_payment_charge_id,
            currency=paid.currency,
            total_amount=paid.total_amount,
            payload=paid.invoice_payload,
            user_id=user.id if user else message.chat.id,
            is_recurring=bool(paid.is_recurring),
            is_first_recurring=bool(paid.is_first_recurring),
            subscription_expiration=_when(paid.subscription_expiration_date),
        )
        for attempt in range(1, CREDIT_ATTEMPTS + 1):
            try:
                credited = await stars.credit(charge)
            except Exception:
                log.exception(
                    "Stars charge %s not recorded (attempt %d)", charge.charge_id, attempt
                )
                if attempt == CREDIT_ATTEMPTS:
                    raise
                await asyncio.sleep(CREDIT_RETRY_SECONDS * attempt)
                continue
            deliver(credited.outbox_ids)
            return

    @router.message(F.refunded_payment)
    async def refunded_payment(message: Message) -> None:
        refunded = message.refunded_payment
        assert refunded is not None
        try:
            result = await stars.refunded(refunded.telegram_payment_charge_id, actor="telegram")
        except Exception:
            log.exception("refund of %s not recorded", refunded.telegram_payment_charge_id)
            return
        deliver(result.outbox_ids)

    return router


def _when(value: int | None) -> datetime | None:
    """``subscription_expiration_date`` (Unix time) as an aware datetime."""
    return None if value is None else datetime.fromtimestamp(value, UTC)

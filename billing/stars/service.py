"""Stars payments as one part the composition root builds (``TELEGRAM_PAYMENTS=stars``):
invoices, pre-checkout answers, crediting, refunds and subscription cancellation."""

from __future__ import annotations

from dataclasses import dataclass

from billing.stars.amounts import STARS_PROVIDER
from billing.stars.api import StarsApi, StarsApiError
from billing.stars.checks import Verdict, check_pre_checkout
from billing.stars.credit import Credited, StarsCharge, StarsCrediting
from billing.stars.invoices import StarsInvoices
from billing.stars.refunds import take_back
from billing.stripe.effects import EffectContext
from core.clock import Clock
from core.errors import PaymentUnavailable, SwitchboardError
from core.i18n import Translators, lazy
from storage.db import Sessions
from storage.models import Subscription
from storage.repositories.payments import PaymentRepository, SubscriptionRepository

#: Telegram's answer when the charge was refunded already (by us before, or by its support).
ALREADY_REFUNDED = "CHARGE_ALREADY_REFUNDED"


@dataclass(frozen=True, slots=True)
class Refunded:
    payment_id: int
    #: Tokens taken back now; None when the payment was already refunded.
    tokens: int | None
    outbox_ids: tuple[int, ...] = ()


class StarsPayments:
    def __init__(
        self,
        sessions: Sessions,
        api: StarsApi,
        *,
        clock: Clock,
        issuer_country: str = "",
        translators: Translators | None = None,
    ) -> None:
        self._sessions = sessions
        self._api = api
        self._clock = clock
        self._issuer_country = issuer_country
        #: Notices to the paying chat are in its reader's language (English without them).
        self._translators = translators
        self.invoices = StarsInvoices(sessions, api, clock=clock, translators=translators)
        self._crediting = StarsCrediting(
            sessions, clock=clock, issuer_country=issuer_country, translators=translators
        )

    async def pre_checkout(self, payload: str, currency: str, total_amount: int) -> Verdict:
        return await check_pre_checkout(self._sessions, payload, currency, total_amount)

    async def credit(self, charge: StarsCharge) -> Credited:
        return await self._crediting.credit(charge)

    async def refund(self, payment_id: int, *, actor: str) -> Refunded:
        """Ask Telegram to return a Stars payment, then take it back (once)."""
        async with self._sessions() as session:
            payment = await PaymentRepository(session).by_id(payment_id)
        if payment is None or payment.provider != STARS_PROVIDER:
            raise SwitchboardError(f"payment {payment_id} is not a Stars payment")
        if payment.status == "refunded":
            return Refunded(payment.id, None)
        if payment.telegram_charge_id is None or payment.telegram_user_id is None:
            raise SwitchboardError(
                f"payment {payment_id} was never paid",
                user_message=lazy(
                    "Payment #{id} was never paid: there is nothing to refund.", id=payment_id
                ),
            )
        try:
            await self._api.refund(int(payment.telegram_user_id), payment.telegram_charge_id)
        except StarsApiError as exc:
            if ALREADY_REFUNDED not in exc.description.upper():
                raise PaymentUnavailable(
                    f"refundStarPayment refused: {exc.description}",
                    user_message=lazy(
                        "Telegram refused the refund: {reason}", reason=exc.description
                    ),
                ) from exc
        return await self.refunded(payment.telegram_charge_id, actor=actor)

    async def refunded(self, charge_id: str, *, actor: str) -> Refunded:
        """Telegram confirmed a refund of ``charge_id``: take it back, once."""
        now = self._clock()
        async with self._sessions.begin() as session:
            payment = await PaymentRepository(session).by_charge(charge_id, lock=True)
            if payment is None:
                raise SwitchboardError(f"no payment of Telegram charge {charge_id}")
            ctx = EffectContext(
                session, now, charge_id, "refunded_payment",
                issuer_country=self._issuer_country, cause=f"stars-refund:{payment.id}",
            )  # fmt: skip
            taken = await take_back(ctx, payment, actor=actor, translators=self._translators)
            await ctx.settle_told()
        return Refunded(payment.id, taken, tuple(ctx.outbox_ids))

    async def cancel(self, subscription: Subscription, *, cancel: bool = True) -> None:
        """Stop (or resume) a Stars subscription's renewals: it runs to its period's end."""
        if subscription.telegram_user_id is None or subscription.telegram_charge_id is None:
            raise SwitchboardError(f"subscription {subscription.id} is not a Stars one")
        try:
            await self._api.cancel_subscription(
                int(subscription.telegram_user_id), subscription.telegram_charge_id, cancel=cancel
            )
        except StarsApiError as exc:
            raise PaymentUnavailable(
                f"editUserStarSubscription refused: {exc.description}",
                user_message=lazy(
                    "Telegram could not change the subscription just now; please try again."
                ),
            ) from exc
        async with self._sessions.begin() as session:
            row = await SubscriptionRepository(session).find(subscription.stripe_subscription_id)
            if row is not None:
                row.cancel_at_period_end, row.updated_at = cancel, self._clock()

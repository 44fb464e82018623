"""What Stars payments ask of the Telegram Bot API; ``handlers.telegram.payments`` implements
it with aiogram (billing imports no chat SDK)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class StarsApiError(Exception):
    """The Bot API refused or could not be reached; ``description`` is Telegram's."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True, slots=True)
class InvoiceSpec:
    """One Stars invoice: a single price line, currency ``XTR``, no provider token."""

    title: str
    description: str
    payload: str
    stars: int
    label: str


class StarsApi(Protocol):
    async def send_invoice(self, chat_id: int, spec: InvoiceSpec, *, thread_id: int | None) -> None:
        """``sendInvoice`` into a chat."""

    async def subscription_link(self, spec: InvoiceSpec) -> str:
        """``createInvoiceLink`` with ``subscription_period`` (30 days): the link to pay."""

    async def refund(self, user_id: int, charge_id: str) -> None:
        """``refundStarPayment``; :class:`StarsApiError` when refused."""

    async def cancel_subscription(self, user_id: int, charge_id: str, *, cancel: bool) -> None:
        """``editUserStarSubscription`` (``is_canceled``)."""

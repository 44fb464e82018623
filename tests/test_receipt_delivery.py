"""Receipts and credit notes delivered as their PDF (DESIGN §8): to the chat that paid (with the
payment notice) and the tenant's other chats, and e-mailed with the PDF attached through a real
SMTP server on 127.0.0.1, all through outbox rows written with the webhook's effect, so a
redelivered event sends nothing again. Driven through the real Telegram adapter against the
fake Bot API and events signed by the fake Stripe."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage

import pytest
from pypdf import PdfReader
from sqlalchemy import select

from bot.channels import build_channels
from bot.service import ServiceRunner
from storage.models import OutboxMessage
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.fakes.telegram_server import FakeTelegramServer, StoredMessage
from tests.test_invoice_delivery import _Inbox, smtp  # noqa: F401  (fixture, used by name)
from tests.test_payments import START, stripe_env
from tests.test_payments_channels import _keyboard

USER = 515151
EMAIL = "billing@acme.test"


@dataclass
class Served:
    service: ServiceRunner
    telegram: FakeTelegramServer
    stripe: FakeStripeServer
    inbox: _Inbox

    def documents(self) -> list[StoredMessage]:
        return [m for m in self.telegram.chat_messages(USER) if m.document]

    def mails(self) -> list[EmailMessage]:
        return [message for _, _, message in self.inbox.messages]

    async def settled(self) -> None:
        """Every outbox row delivered (none left pending), so counting now is final."""
        for _ in range(200):
            async with self.service.app.deps.sessions() as session:
                rows = (await session.execute(select(OutboxMessage.status))).scalars().all()
            if rows and all(status == "sent" for status in rows):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"outbox not delivered: {rows}")


@pytest.fixture
async def served(
    make_app: AppFactory,
    smtp: tuple[_Inbox, int],  # noqa: F811
) -> AsyncIterator[Served]:
    inbox, port = smtp
    async with FakeStripeServer() as stripe, FakeTelegramServer() as telegram:
        app = await make_app(
            **stripe_env(stripe),
            TELEGRAM_BOT_TOKEN=telegram.token,
            TELEGRAM_API_BASE=telegram.base_url,
            SMTP_URL=f"smtp://127.0.0.1:{port}",
            SMTP_FROM="invoices@switchboard.test",
            COMPANY_NAME="Switchboard SAS",
        )
        channels = build_channels(app.settings, app.deps, app.pipeline, app.registry)
        service = ServiceRunner(app, channels)
        await service.start()
        stripe.webhook_urls.append(f"http://127.0.0.1:{service.port}/stripe/webhook")
        try:
            code = await tenant_with_tokens(app, tokens=START)
            await admin(app, "tenant", "set", "acme", "--email", EMAIL)
            await telegram.send_update(telegram.private_message(USER, f"/start {code}"))
            await telegram.wait_for_bot_messages(USER)
            yield Served(service, telegram, stripe, inbox)
        finally:
            await service.stop()


async def _buy_from_the_chat(served: Served, pack: str = "pro") -> str:
    """``/buy PACK`` in the tenant's Telegram chat; the Checkout Session's id."""
    telegram = served.telegram
    before = len(telegram.chat_messages(USER))
    await telegram.send_update(telegram.private_message(USER, f"/buy {pack}"))
    await telegram.wait_for_bot_messages(USER, before + 1)
    [button] = _keyboard(telegram, USER)
    return str(served.stripe.session_for_url(button["url"])["id"])


def _pdf_text(data: bytes) -> str:
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def _attachment(message: EmailMessage) -> tuple[str, bytes]:
    [part] = list(message.iter_attachments())
    data = part.get_content()
    assert isinstance(data, bytes)
    return str(part.get_filename()), data


async def test_a_pack_bought_sends_its_receipt_pdf_to_the_chat_and_by_mail_once(
    served: Served,
) -> None:
    stripe, telegram = served.stripe, served.telegram
    session_id = await _buy_from_the_chat(served)
    completed = stripe.completed(session_id)
    for _ in range(3):  # the webhook redelivered: nothing new is made or sent
        assert await stripe.deliver(completed) == [200]
    await served.settled()
    await asyncio.sleep(0.2)  # time for a duplicate to show up, if one were sent

    [receipt] = served.documents()
    assert receipt.document is not None
    number = receipt.document["file_name"].removesuffix(".pdf")
    assert re.fullmatch(r"INV-\d{4}-0001", number)
    assert receipt.caption == f"Invoice {number}: 15.00 EUR"
    # The payment notice the payer saw before is still there, right after its receipt.
    assert telegram.bot_texts(USER)[-1] == (
        f"Payment received: +2,000,000 tokens, balance 2,100,000. Receipt {number}."
    )
    assert telegram.chat_messages(USER)[-1].text == telegram.bot_texts(USER)[-1]

    [mail] = served.mails()
    assert mail["To"] == EMAIL
    name, data = _attachment(mail)
    assert name == f"{number}.pdf" and data.startswith(b"%PDF")
    printed = _pdf_text(data)
    assert f"Invoice {number}" in printed and "15.00" in printed
    body = mail.get_body(("plain",))
    assert body is not None
    assert f"Receipt: invoice {number} from Switchboard SAS, 15.00 EUR, paid." in str(
        body.get_content()
    )


async def test_a_refund_delivers_its_credit_note_pdf(served: Served) -> None:
    stripe = served.stripe
    session_id = await _buy_from_the_chat(served)
    assert await stripe.pay(session_id) == [200]
    await served.settled()
    refunded = stripe.refunded(session_id)
    for _ in range(2):
        assert await stripe.deliver(refunded) == [200]
    await served.settled()
    await asyncio.sleep(0.2)

    names = [m.document["file_name"] for m in served.documents() if m.document]
    assert len(names) == 2 and names[0].startswith("INV-")
    assert re.fullmatch(r"CN-\d{4}-0001\.pdf", names[1])
    note = served.documents()[1]
    assert note.caption is not None and note.caption.startswith(f"Credit note {names[1][:-4]}:")
    assert note.caption.endswith("-15.00 EUR")
    mailed = [_attachment(m)[0] for m in served.mails()]
    assert mailed == names
    refunds = [t for t in served.telegram.bot_texts(USER) if t.startswith("Refund processed")]
    assert refunds == ["Refund processed: -2,000,000 tokens, balance 100,000."]


async def test_cancelling_a_sent_invoice_delivers_its_credit_note(served: Served) -> None:
    app = served.service.app
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]
    sent = await admin(app, "invoice", "send", number)
    assert sent.text.startswith(f"Sent {number}")
    await served.settled()

    cancelled = await admin(app, "invoice", "cancel", number)
    [credit] = re.findall(r"Credit note (CN-\d{4}-\d{4})", cancelled.text)
    await served.settled()

    names = [m.document["file_name"] for m in served.documents() if m.document]
    assert names == [f"{number}.pdf", f"{credit}.pdf"]
    assert [_attachment(m)[0] for m in served.mails()] == names
    assert f"Credits invoice {number}" in _pdf_text(_attachment(served.mails()[1])[1])
    assert served.telegram.bot_texts(USER)[-1] == (
        f"Credit note {credit} from Switchboard SAS for invoice {number}: -120.00 EUR."
    )


async def test_a_german_tenants_receipt_and_invoice_speak_german(served: Served) -> None:
    app = served.service.app
    await admin(app, "tenant", "set", "acme", "--language", "de")
    session_id = await _buy_from_the_chat(served)
    assert await served.stripe.pay(session_id) == [200]
    number = (await admin(app, "invoice", "new", "acme", "100", "Beratung")).data["number"]
    await admin(app, "invoice", "send", number)
    await served.settled()

    receipt, invoice = served.documents()
    assert receipt.caption is not None and invoice.caption is not None
    assert re.fullmatch(r"Rechnung INV-\d{4}-0001: 15,00\sEUR", receipt.caption)
    assert re.fullmatch(rf"Rechnung {number}: 120,00\sEUR", invoice.caption)
    receipt_mail, invoice_mail = served.mails()
    receipt_body = receipt_mail.get_body(("plain",))
    assert receipt_body is not None and "bezahlt" in str(receipt_body.get_content())
    invoice_body = invoice_mail.get_body(("plain",))
    assert invoice_body is not None
    assert f"Rechnung {number} von Switchboard SAS" in str(invoice_body.get_content())

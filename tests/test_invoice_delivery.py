"""``invoice send``: by e-mail through a real SMTP server on 127.0.0.1, and sent only once a
delivery succeeded (no recipient: refused, nothing changed; none reachable now: queued in the
outbox, still a draft, and delivered later)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from bot.app import App
from core.envelope import ChatAddress
from core.errors import SwitchboardError
from storage.models import OutboxMessage
from tests.conftest import AppFactory, admin, tenant_with_tokens
from tests.fakes.stripe_server import FakeStripeServer
from tests.test_alerts import Clock
from tests.test_payments import stripe_env


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        raw = content if isinstance(content, bytes) else content.encode()
        mail_from = envelope.mail_from  # type: ignore[attr-defined]
        rcpt_tos = envelope.rcpt_tos  # type: ignore[attr-defined]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((mail_from, list(rcpt_tos), message))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox, port = _Inbox(), _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def _status(app: App, number: str) -> str:
    return str((await admin(app, "invoice", "show", number)).data["status"])


async def test_a_tenant_with_only_an_email_gets_one_mail_with_the_pdf(
    make_app: AppFactory, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    app = await make_app(
        SMTP_URL=f"smtp://127.0.0.1:{port}",
        SMTP_FROM="Switchboard Billing <billing@switchboard.test>",
        COMPANY_NAME="Switchboard SAS",
    )
    await tenant_with_tokens(app, "acme", tokens=0)
    await admin(app, "tenant", "set", "acme", "--email", "ap@acme.test")
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]

    sent = await admin(app, "invoice", "send", number)

    assert sent.text.startswith(f"Sent {number}") and "to 1 of 1 recipient" in sent.text
    assert await _status(app, number) == "sent"
    [(sender, to, message)] = inbox.messages
    assert (sender, to) == ("billing@switchboard.test", ["ap@acme.test"])
    due = datetime.fromisoformat(str((await admin(app, "invoice", "show", number)).data["due_at"]))
    # The tenant's language (English here) writes the due date out.
    subject = (
        f"Invoice {number} from Switchboard SAS: 120.00 EUR, due {due:%B} {due.day}, {due:%Y}."
    )
    assert message["Subject"].strip() == subject
    [attachment] = [part for part in message.walk() if part.get_filename()]
    assert attachment.get_content_type() == "application/pdf"
    pdf = attachment.get_payload(decode=True)
    assert isinstance(pdf, bytes) and pdf.startswith(b"%PDF")


async def test_no_recipient_is_refused_and_the_invoice_stays_a_draft(app: App) -> None:
    await tenant_with_tokens(app, "acme", tokens=0)
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]

    with pytest.raises(SwitchboardError) as refused:
        await admin(app, "invoice", "send", number)

    assert "has no chat linked and no e-mail" in (refused.value.user_message or "")
    shown = (await admin(app, "invoice", "show", number)).data
    assert (shown["status"], shown["due_at"]) == ("draft", None)


async def test_a_chat_this_process_cannot_reach_is_queued_and_the_invoice_stays_a_draft(
    app: App,
) -> None:
    # A Telegram chat is linked, but this shell has no bot token and no SMTP is set: the
    # message waits in the outbox for a running switchboard (tests/test_outbox.py delivers it).
    from storage.repositories.tenants import BindingRepository, TenantRepository

    await tenant_with_tokens(app, "acme", tokens=0)
    async with app.deps.sessions.begin() as session:
        tenant = await TenantRepository(session).get("acme")
        address = ChatAddress("telegram", "4242", user_id="4242", is_private=True)
        await BindingRepository(session).bind(tenant, "telegram", "user:4242", address.to_json())
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]

    queued = await admin(app, "invoice", "send", number)

    assert queued.text.startswith(
        f"Queued {number} for 1 recipient(s), none reached yet (this process does not reach "
        "telegram): a running switchboard delivers it"
    )
    assert "It is draft until then" in queued.text
    assert await _status(app, number) == "draft"
    [row] = await _outbox(app)
    assert (row.channel, row.chat_key, row.status, row.attempts) == (
        "telegram",
        "4242",
        "pending",
        0,
    )
    assert row.cause_kind == "invoice.send" and row.cause_ref.startswith(f"{number}@")
    [file] = row.files
    stored = app.settings.media_dir / file["path"]
    assert file["name"] == f"{number}.pdf" and stored.read_bytes().startswith(b"%PDF")


async def test_a_failed_mail_is_retried_later_and_the_invoice_sent_once(
    make_app: AppFactory,
) -> None:
    clock = Clock(datetime(2026, 12, 4, 9, tzinfo=UTC))
    port = _free_port()  # nobody listens there yet: the mail server is down
    app = await make_app(clock=clock, SMTP_URL=f"smtp://127.0.0.1:{port}")
    await tenant_with_tokens(app, "acme", tokens=0)
    await admin(app, "tenant", "set", "acme", "--email", "ap@acme.test")
    number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]

    queued = await admin(app, "invoice", "send", number)

    assert queued.text.startswith(f"Queued {number} for 1 recipient(s), none reached yet (")
    shown = (await admin(app, "invoice", "show", number)).data
    assert (shown["status"], shown["due_at"]) == ("draft", None)
    [row] = await _outbox(app)
    assert (row.status, row.attempts) == ("pending", 1) and row.last_error
    assert row.next_attempt_at == clock.at + timedelta(seconds=30), "back-off after a failure"

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert (await app.deps.outbox.deliver_due()).sent == 0, "not due before its back-off"
        clock.at += timedelta(seconds=30)
        assert (await app.deps.outbox.deliver_due()).sent == 1
        assert (await app.deps.outbox.deliver_due()).sent == 0
    finally:
        controller.stop()

    [(_, to, message)] = inbox.messages
    assert to == ["ap@acme.test"] and message["Subject"].startswith(f"Invoice {number} from")
    shown = (await admin(app, "invoice", "show", number)).data
    assert shown["status"] == "sent"
    assert shown["due_at"].startswith("2027-01-03"), "due 30 days from when it was sent"
    [row] = await _outbox(app)
    assert (row.status, row.attempts, row.sent_at) == ("sent", 2, clock.at)


async def _outbox(app: App) -> list[OutboxMessage]:
    async with app.deps.sessions() as session:
        return list((await session.execute(select(OutboxMessage))).scalars())


async def test_stripe_down_during_send_still_delivers_without_a_pay_link(
    make_app: AppFactory, smtp: tuple[_Inbox, int]
) -> None:
    inbox, port = smtp
    async with FakeStripeServer() as stripe:
        app = await make_app(**stripe_env(stripe, SMTP_URL=f"smtp://127.0.0.1:{port}"))
        await tenant_with_tokens(app, "acme", tokens=0)
        await admin(app, "tenant", "set", "acme", "--email", "ap@acme.test")
        number = (await admin(app, "invoice", "new", "acme", "100", "Consulting")).data["number"]
        stripe.fail_next(status=500, count=10)

        sent = await admin(app, "invoice", "send", number)

    assert "No pay link: Stripe did not answer" in sent.text
    assert await _status(app, number) == "sent"
    [(_, _, message)] = inbox.messages
    body = message.get_body(preferencelist=("plain",))
    assert body is not None and "checkout.stripe.com" not in body.get_content()


def test_smtp_url_forms() -> None:
    from handlers.mail import SmtpServer

    assert SmtpServer.parse("smtp://user%40acme:p%3Ass@mail.acme.test") == SmtpServer(
        "mail.acme.test", 587, "user@acme", "p:ss", tls=False
    )
    assert SmtpServer.parse("smtps://mail.acme.test").port == 465
    assert SmtpServer.parse("smtps://mail.acme.test").tls is True
    with pytest.raises(ValueError, match="SMTP_URL must look like"):
        SmtpServer.parse("mail.acme.test:25")

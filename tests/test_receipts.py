# ruff: noqa: F811  (the fixtures imported from test_payments are parameters here)
"""Every sale invoiced once, and credit notes (DESIGN §8): a pack or subscription period paid
through Stripe makes one ``paid`` invoice equal to the charge, whatever Stripe redelivers; a
refund or the cancelling of a sent invoice issues a credit note in its own gapless sequence.
Driven through the real webhook with events signed by the fake Stripe."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pypdf import PdfReader

from billing.invoicing.arithmetic import PPM, line_amount, totals
from billing.invoicing.service import InvoiceStateError, split_gross
from core.money import MICROS_PER_UNIT
from storage.models import Invoice
from tests.conftest import admin, bind_console, say, tenant_with_tokens
from tests.test_payments import (  # noqa: F401  (fixtures, used by name)
    START,
    Shop,
    ShopFactory,
    count,
    open_shop,
    shop,
    stripe_api,
)

CENT = MICROS_PER_UNIT // 100


async def documents(shop: Shop, slug: str = "acme") -> list[dict[str, Any]]:
    """The tenant's invoices then credit notes, each oldest first, as ``--json`` shows them."""
    listed = (await admin(shop.app, "invoice", "list", slug, "--limit", "200")).data
    return sorted(listed, key=lambda d: (d["kind"] != "invoice", d["number"]))


def numbers(docs: list[dict[str, Any]], prefix: str) -> list[int]:
    return [int(d["number"].rsplit("-", 1)[1]) for d in docs if d["number"].startswith(prefix)]


def net_plus_vat(doc: dict[str, Any]) -> Decimal:
    return Decimal(doc["subtotal"]) + Decimal(doc["vat"])


# -- receipts ---------------------------------------------------------------------------------


async def test_a_pack_bought_makes_one_paid_invoice_equal_to_the_charge(shop: Shop) -> None:
    app, stripe = shop.app, shop.stripe
    session_id = (await shop.buy("pro"))["session_id"]
    assert await stripe.pay(session_id) == [200]
    event = stripe.completed(session_id)
    for _ in range(2):  # redelivered: still one receipt
        assert await stripe.deliver(event) == [200]
    assert await count(app, Invoice) == 1

    [receipt] = await documents(shop)
    assert re.fullmatch(r"INV-\d{4}-0001", receipt["number"])
    assert (receipt["kind"], receipt["credits"], receipt["status"]) == ("invoice", None, "paid")
    assert (receipt["total"], receipt["currency"]) == ("15.00", "EUR")
    # The price includes VAT at the tenant's rate (20 %): 12.50 + 2.50.
    assert (receipt["subtotal"], receipt["vat_rate"], receipt["vat"]) == ("12.50", "0.20", "2.50")
    assert net_plus_vat(receipt) == Decimal("15.00")
    assert receipt["paid_at"] is not None and receipt["pay_url"] is None
    [line] = receipt["lines"]
    assert line["amount"] == "12.50" and "2,000,000 tokens" in line["description"]
    async with app.deps.sessions() as session:
        row = await session.get(Invoice, 1)
        assert row is not None
    payment = await shop.payment(session_id)
    assert row.payment_id == payment.id  # linked to the payment it records

    shown = await admin(app, "invoice", "show", receipt["number"])
    assert shown.files and shown.files[0].data.startswith(b"%PDF")
    # The monthly run does not bill it again: a prepaid tenant has no monthly invoice.
    assert await shop.ledger_ok()


async def test_a_reverse_charged_buyer_gets_a_receipt_without_vat(open_shop: ShopFactory) -> None:
    """A French issuer selling a pack to a German company with a VAT ID: the buyer accounts for
    the VAT, so the receipt carries none and its net is all that was charged."""
    shop = await open_shop(COMPANY_COUNTRY="FR")
    await tenant_with_tokens(shop.app, "gmbh", tokens=0)
    await admin(shop.app, "tenant", "set", "gmbh", "--country", "DE", "--vat-id", "DE123456789")
    session_id = (await shop.buy("pro", "gmbh"))["session_id"]
    assert await shop.stripe.pay(session_id) == [200]
    [receipt] = await documents(shop, "gmbh")
    assert (receipt["subtotal"], receipt["vat_rate"], receipt["vat"], receipt["total"]) == (
        "15.00",
        "0.00",
        "0.00",
        "15.00",
    )


async def test_members_see_their_receipts_with_invoices(shop: Shop) -> None:
    await bind_console(shop.app)
    session_id = (await shop.buy("starter"))["session_id"]
    assert await shop.stripe.pay(session_id) == [200]
    listed = await say(shop.app, "/invoices")
    assert re.fullmatch(r"INV-\d{4}-0001 acme paid 5\.00 EUR paid \d{4}-\d\d-\d\d", listed.texts[0])
    assert not listed.buttons  # nothing to pay


async def test_a_renewal_paid_makes_one_paid_invoice(shop: Shop) -> None:
    stripe = shop.stripe
    data = await admin(shop.app, "subscribe", "pro", "--tenant", "acme")
    session_id = str(data.data["session_id"])
    assert await stripe.pay(session_id) == [200, 200]
    subscription_id = stripe.sessions[session_id].data["subscription"]
    assert await stripe.deliver(stripe.invoice_paid(subscription_id, first=True)) == [200]
    assert len(await documents(shop)) == 1  # the first period, once

    renewal = stripe.invoice_paid(subscription_id)
    for _ in range(2):
        assert await stripe.deliver(renewal) == [200]
    docs = await documents(shop)
    assert [d["status"] for d in docs] == ["paid", "paid"]
    assert numbers(docs, "INV") == [1, 2]
    for doc in docs:
        assert doc["total"] == "29.00" and net_plus_vat(doc) == Decimal("29.00")
        assert "Pro plan" in doc["lines"][0]["description"]
    # A Stripe-paid month is not billed again by the monthly run (no plan line).
    assert await shop.ledger_ok()


# -- credit notes -----------------------------------------------------------------------------


async def test_refunds_make_credit_notes_once_per_increment(shop: Shop) -> None:
    stripe = shop.stripe
    session_id = (await shop.buy("pro"))["session_id"]
    assert await stripe.pay(session_id) == [200]
    partial = stripe.refunded(session_id, amount=400)  # 4.00 of 15.00
    for _ in range(2):
        assert await stripe.deliver(partial) == [200]
    rest = stripe.refunded(session_id)  # the 11.00 left
    for _ in range(2):
        assert await stripe.deliver(rest) == [200]
    assert await stripe.deliver(partial) == [200]  # a late, older event: nothing new

    docs = await documents(shop)
    receipt = docs[0]
    notes = [d for d in docs if d["kind"] == "credit_note"]
    assert [re.sub(r"\d{4}", "Y", n["number"], count=1) for n in notes] == [
        "CN-Y-0001",
        "CN-Y-0002",
    ]
    assert [n["total"] for n in notes] == ["-4.00", "-11.00"]
    assert all(n["credits"] == receipt["number"] for n in notes)
    assert all(net_plus_vat(n) == Decimal(n["total"]) for n in notes)
    assert sum(Decimal(n["total"]) for n in notes) == -Decimal(receipt["total"])
    assert numbers(docs, "INV") == [1]  # credit notes take no invoice number

    shown = await admin(shop.app, "invoice", "show", notes[0]["number"].lower())
    assert shown.text.startswith(f"Credit note {notes[0]['number']} for {receipt['number']}")
    assert shown.data["kind"] == "credit_note"
    printed = "".join(
        page.extract_text() for page in PdfReader(io.BytesIO(shown.files[0].data)).pages
    )
    assert f"Credit note {notes[0]['number']}" in printed
    assert f"Credits invoice {receipt['number']}" in printed


async def test_a_subscription_period_refunded_gets_a_credit_note(shop: Shop) -> None:
    stripe = shop.stripe
    data = await admin(shop.app, "subscribe", "starter", "--tenant", "acme")
    session_id = str(data.data["session_id"])
    assert await stripe.pay(session_id) == [200, 200]
    subscription_id = stripe.sessions[session_id].data["subscription"]
    renewal = stripe.invoice_paid(subscription_id)
    assert await stripe.deliver(renewal) == [200]
    charge = stripe.invoice_charge(renewal["data"]["object"]["id"])
    assert await stripe.deliver(stripe.charge_refunded(charge["id"])) == [200]
    _first, receipt, note = await documents(shop)
    assert note["kind"] == "credit_note" and note["credits"] == receipt["number"]
    assert Decimal(note["total"]) == -Decimal(receipt["total"])
    # All of it credited: the note mirrors the receipt's lines and totals.
    assert (note["subtotal"], note["vat"]) == (f"-{receipt['subtotal']}", f"-{receipt['vat']}")


async def test_cancelling_a_sent_invoice_issues_a_credit_note_a_draft_none(shop: Shop) -> None:
    app = shop.app
    await bind_console(app)  # a chat to send the invoices to
    draft = (await admin(app, "invoice", "new", "acme", "10", "Setup")).data["number"]
    cancelled = await admin(app, "invoice", "cancel", draft)
    assert "Credit note" not in cancelled.text

    sent = (await admin(app, "invoice", "new", "acme", "100", "Consulting", "--qty", "1.5")).data
    await admin(app, "invoice", "line", sent["number"], "0.33", "Rounding", "--qty", "2.5")
    await app.deps.invoices.send(sent["number"], actor="test")
    sent = (await admin(app, "invoice", "show", sent["number"])).data
    cancelled = await admin(app, "invoice", "cancel", sent["number"])
    assert cancelled.data["status"] == "cancelled"
    [note] = [d for d in await documents(shop) if d["kind"] == "credit_note"]
    assert f"Credit note {note['number']}" in cancelled.text
    assert note["credits"] == sent["number"]
    assert (note["subtotal"], note["vat"], note["total"]) == (
        f"-{sent['subtotal']}",
        f"-{sent['vat']}",
        f"-{sent['total']}",
    )
    assert [line["amount"] for line in note["lines"]] == [
        f"-{line['amount']}" for line in sent["lines"]
    ]
    # A credit note is final: it is not cancelled, paid or sent.
    for action in ("cancel", "paid", "send"):
        with pytest.raises(InvoiceStateError, match="is paid"):
            await admin(app, "invoice", action, note["number"])

    # Numbering: each sequence gapless, invoices and credit notes apart.
    another = (await admin(app, "invoice", "new", "acme", "5", "More")).data["number"]
    await app.deps.invoices.send(another, actor="test")
    await admin(app, "invoice", "cancel", another)
    docs = await documents(shop)
    assert numbers(docs, "INV") == [1, 2, 3]
    assert numbers(docs, "CN") == [1, 2]


# -- properties -------------------------------------------------------------------------------

RATES = st.integers(min_value=0, max_value=PPM)  # 0 % to 100 %, any ppm
CURRENCIES = st.sampled_from(["EUR", "JPY", "USD"])


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.tuples(
            st.decimals(min_value=Decimal("0.001"), max_value=Decimal(1000), places=3),
            st.integers(min_value=1, max_value=10_000 * MICROS_PER_UNIT),
        ),
        min_size=1,
        max_size=8,
    ),
    rate=RATES,
)
def test_lines_add_up_to_the_subtotal_and_vat_is_rounded_once(
    lines: list[tuple[Decimal, int]], rate: int
) -> None:
    amounts = [line_amount(qty, price, "EUR") for qty, price in lines]
    assert all(a % CENT == 0 for a in amounts)  # each line to the cent
    found = totals(amounts, rate, "EUR")
    assert found.subtotal_micros == sum(amounts)
    exact = Decimal(found.subtotal_micros) * rate / PPM
    assert abs(found.vat_micros - exact) <= CENT // 2  # rounded once, to the nearest cent
    assert found.total_micros == found.subtotal_micros + found.vat_micros


@settings(max_examples=500, deadline=None)
@given(cents=st.integers(min_value=0, max_value=99_999_999), rate=RATES, currency=CURRENCIES)
def test_a_receipt_splits_any_charge_into_net_and_vat_that_add_up(
    cents: int, rate: int, currency: str
) -> None:
    minor = CENT if currency != "JPY" else MICROS_PER_UNIT
    charged = cents * minor
    split = split_gross(charged, rate, currency)
    assert split.total_micros == charged
    assert split.subtotal_micros + split.vat_micros == charged
    assert split.subtotal_micros % minor == 0 and split.vat_micros % minor == 0
    assert 0 <= split.vat_micros <= charged
    # The VAT is the rate of the net, within one minor unit.
    assert abs(split.vat_micros - Decimal(split.subtotal_micros) * rate / PPM) <= minor
    assert split_gross(-charged, rate, currency).total_micros == -charged


@settings(max_examples=300, deadline=None)
@given(
    charged=st.integers(min_value=1, max_value=10_000_000).map(lambda c: c * CENT),
    parts=st.lists(st.integers(min_value=1, max_value=100), min_size=1, max_size=6),
    rate=RATES,
)
def test_credit_notes_of_partial_refunds_add_up_to_minus_what_was_refunded(
    charged: int, parts: list[int], rate: int
) -> None:
    """As :func:`billing.invoicing.service.credit_refund` credits: each increment of Stripe's
    running refunded total (capped at the charge) is split on its own."""
    weights = sum(parts)
    running, refunded, notes = 0, 0, []
    for part in parts:
        running = min(charged, running + charged * part // weights // CENT * CENT)
        increment = running - refunded
        if increment > 0:
            notes.append(split_gross(-increment, rate, "EUR"))
            refunded = running
    assert sum(n.total_micros for n in notes) == -refunded
    assert all(n.subtotal_micros + n.vat_micros == n.total_micros for n in notes)
